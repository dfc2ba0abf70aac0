"""bench/payouts.py: its arguments and the raw-SQL floor's per-payout transaction (run here on PostgreSQL)."""

import importlib.util
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_payouts", ROOT / "bench" / "payouts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def test_shapes_parse(bench):
    assert bench.parse_shapes("4x1000, 1000x1") == [(4, 1000), (1000, 1)]
    with pytest.raises(SystemExit):
        bench.parse_shapes("4*1000")


def test_pgbench_script_claims_with_gset_in_one_transaction(bench):
    script = bench.floor_script().splitlines()
    assert script[0] == "BEGIN;"
    assert script[1].endswith("FOR UPDATE SKIP LOCKED \\gset")
    assert script[-1] == "END;"
    assert all(line.endswith(";") for line in script[2:-1])


@pytest.mark.django_db
def test_floor_transaction_pays_each_payout_once_and_balances(bench):
    with connection.cursor() as cursor:
        cursor.execute(bench.FLOOR_SCHEMA.format(companies=3))
        cursor.execute(
            "INSERT INTO payfloor.payout (public_id, advance_id, company_id, sequence, status, amount)"
            " VALUES ('po_1', 1, 2, 1, 'pending', 100.00), ('po_2', 1, 2, 2, 'pending', 100.00)"
        )
        claim, *rest = bench.floor_steps_psycopg()
        for _ in range(2):
            cursor.execute(claim)
            pid, company = cursor.fetchone()
            for step in rest:
                cursor.execute(step, {"pid": pid, "company": company})
        cursor.execute(claim)
        assert cursor.fetchone() is None  # nothing left to claim
        cursor.execute("SELECT status, attempt_count FROM payfloor.payout ORDER BY id")
        assert cursor.fetchall() == [("succeeded", 1), ("succeeded", 1)]
        cursor.execute("SELECT count(*), count(DISTINCT payout_id) FROM payfloor.attempt")
        assert cursor.fetchone() == (2, 2)
        cursor.execute("SELECT sum(CASE direction WHEN 'D' THEN amount ELSE -amount END), count(*) FROM payfloor.entry")
        assert cursor.fetchone() == (Decimal("0.00"), 4)
        cursor.execute("SELECT id, debits_posted, credits_posted FROM payfloor.account WHERE id IN (0, 2) ORDER BY id")
        assert cursor.fetchall() == [(0, Decimal("0.00"), Decimal("200.00")), (2, Decimal("200.00"), Decimal("0.00"))]
        cursor.execute(
            "SELECT count(*), count(DISTINCT resource_id) FROM payfloor.event WHERE type = %s", ["payout.succeeded"]
        )
        assert cursor.fetchone() == (2, 2)
