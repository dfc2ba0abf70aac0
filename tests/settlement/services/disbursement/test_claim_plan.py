"""The claim's first statement reads the dispatched advance's own payouts through its own index, never by
walking the whole queue: every dispatch task runs it, and a task whose payouts another batch took must stay
one cheap lookup however long the queue is (a morning's backlog: 100,000 pending payouts)."""

import json
import re

import pytest
from django.db import connection

from funding.models import Advance, Payout
from settlement.services.disbursement import claim

pytestmark = pytest.mark.django_db


def _nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _queue_of(n: int, like: Advance) -> None:
    """n more reserved advances of one pending payout each, copies of `like` and its first payout, written in SQL
    (through the services that would take minutes), then fresh statistics: a queue the planner knows is long."""
    advance_columns = [f.column for f in Advance._meta.concrete_fields if f.column != "id"]
    payout_columns = [f.column for f in Payout._meta.concrete_fields if f.column != "id"]
    fresh = {"public_id": "'%s_bulk_' || g", "external_id": "'bulk-' || g"}

    def select(columns: list[str], prefix: str, alias: str) -> str:
        return ", ".join(fresh[c] % prefix if c == "public_id" else fresh.get(c, f"{alias}.{c}") for c in columns)

    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO funding_advance ({', '.join(advance_columns)}) SELECT {select(advance_columns, 'adv', 'a')}"
            " FROM funding_advance a, generate_series(1, %s) g WHERE a.id = %s",
            [n, like.pk],
        )
        payout = ", ".join(
            {"public_id": "'po_bulk_' || v.id", "advance_id": "v.id"}.get(c, f"p.{c}") for c in payout_columns
        )
        cursor.execute(
            f"INSERT INTO funding_payout ({', '.join(payout_columns)}) SELECT {payout}"
            " FROM funding_payout p, funding_advance v"
            " WHERE p.advance_id = %s AND p.sequence = 1 AND v.public_id LIKE 'adv\\_bulk\\_%%'",
            [like.pk],
        )
        cursor.execute("ANALYZE funding_advance, funding_payout")


def test_the_own_payouts_are_read_by_the_advance_index_in_the_generic_plan(advance_factory):
    advances = [advance_factory("10.00", "20.00") for _ in range(3)]
    _queue_of(2000, advances[0])
    assert Payout.objects.filter(status="pending").count() == 2006
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
    scans = [node for node in _nodes(own) if node.get("Relation Name") == "funding_payout"]
    assert [(s["Node Type"], s.get("Index Name"), s.get("Index Cond")) for s in scans] == [
        ("Index Scan", "funding_payout_pending_own", "(advance_id = $1)")
    ]
