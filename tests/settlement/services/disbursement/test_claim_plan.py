"""The claim's first statement reads the dispatched advance's own payouts through its own index, never by
walking the whole queue: every dispatch task runs it, and a task whose payouts another batch took must stay
one cheap lookup however long the queue is (a morning's backlog: 100,000 pending payouts)."""

import json
import re

import pytest
from django.db import connection

from settlement.services.disbursement import claim

pytestmark = pytest.mark.django_db


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def test_the_own_payouts_are_read_by_the_advance_index_in_the_generic_plan(advance_factory):
    advances = [advance_factory("10.00", "20.00") for _ in range(30)]
    sql = claim._CANDIDATES_SQL
    names = ["advance", "now", "open", "limit", "any_due"]
    types = {"advance": "bigint", "now": "timestamptz", "open": "text[]", "limit": "integer", "any_due": "boolean"}
    for n, name in enumerate(names, 1):
        sql = re.sub(rf"%\({name}\)s", f"${n}", sql)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")  # what a prepared statement ends with
        cursor.execute(f"PREPARE own_lookup ({', '.join(types[n] for n in names)}) AS {sql}")
        cursor.execute(
            "EXPLAIN (FORMAT JSON) EXECUTE own_lookup (%s, now(), ARRAY['reserved', 'disbursing', 'overdue'], 250,"
            " false)", [advances[-1].pk]
        )
        plan = cursor.fetchone()[0]
        cursor.execute("DEALLOCATE own_lookup")
    plan = plan if isinstance(plan, list) else json.loads(plan)
    own = next(node for node in _nodes(plan[0]["Plan"]) if node.get("Subplan Name") == "CTE own")
    # An index scan or a bitmap one, on whichever index starts with advance_id (the statistics decide): each
    # payout index the lookup uses is searched by the advance; none is walked with the advance as a filter.
    payout_indexes = {"funding_payout_sequence_unique", "funding_payout_external_id_unique", "funding_payout_pkey",
                      "funding_payout_pending", "funding_pay_status_d225da_idx", "funding_payout_public_id_unique"}
    used = [(node.get("Index Name"), node.get("Index Cond")) for node in _nodes(own)
            if node.get("Relation Name") == "funding_payout" or node.get("Index Name") in payout_indexes]
    assert any(name for name, _ in used), used  # an index, not a sequential scan
    assert all(cond == "(advance_id = $1)" for name, cond in used if name), used
    assert all(name in ("funding_payout_sequence_unique", "funding_payout_external_id_unique")
               for name, _ in used if name), used
