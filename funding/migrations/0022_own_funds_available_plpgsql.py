"""own_funds_available() in PL/pgSQL (issue 15): as a SQL function with sub-queries it was never inlined, and
PostgreSQL 15 planned its body again on every call, 0.4 ms of backend CPU in every advance's advance_reserve()
(docs/benchmarks.md). Same result; the plan is now kept per connection. The SQL is copied here verbatim;
funding/sql/advance_reserve.py documents it.
"""

from django.db import migrations

FORWARD = r"""
-- Own funds never take money that is due (contract 1.7): the settlement account's balance, less what is due
-- for repayment on or before p_business_date and not yet collected (advances_due), less own funds held by
-- advances not yet final (the account's pending debits); never below 0.00. The one definition:
-- funding.selectors.own_funds_available (GET /credit-line) and advance_reserve() both call it. A caller that
-- acts on it locks the account first (repayment collection locks it too before it reads what is due).
-- PL/pgSQL, not SQL: a SQL function with sub-queries is never inlined, and PostgreSQL 15 plans its body again
-- on every call (0.4 ms of every advance's 0.9 ms in advance_reserve()); PL/pgSQL keeps the plan per connection.
CREATE OR REPLACE FUNCTION own_funds_available(p_company_id bigint, p_currency text, p_business_date date)
RETURNS numeric
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    RETURN GREATEST(
               COALESCE((SELECT a.credits_posted - a.debits_posted - a.debits_pending
                           FROM funding_company c
                           JOIN ledger_account a ON a.owner = c.code AND a.kind = 'settlement'
                                                AND a.currency = p_currency
                          WHERE c.id = p_company_id), 0)
               - COALESCE((SELECT SUM(d.pen_due + d.fee_due + d.prin_due)
                             FROM advances_due(ARRAY[p_company_id], p_currency, p_business_date) d), 0),
               0)::numeric(19, 2);
END
$fn$;
"""

BACKWARD = r"""
-- Own funds never take money that is due (contract 1.7): the settlement account's balance, less what is due
-- for repayment on or before p_business_date and not yet collected (advances_due), less own funds held by
-- advances not yet final (the account's pending debits); never below 0.00. The one definition:
-- funding.selectors.own_funds_available (GET /credit-line) and advance_reserve() both call it. A caller that
-- acts on it locks the account first (repayment collection locks it too before it reads what is due).
CREATE OR REPLACE FUNCTION own_funds_available(p_company_id bigint, p_currency text, p_business_date date)
RETURNS numeric
LANGUAGE sql STABLE AS $fn$
    SELECT GREATEST(
               COALESCE((SELECT a.credits_posted - a.debits_posted - a.debits_pending
                           FROM funding_company c
                           JOIN ledger_account a ON a.owner = c.code AND a.kind = 'settlement'
                                                AND a.currency = p_currency
                          WHERE c.id = p_company_id), 0)
               - COALESCE((SELECT SUM(d.pen_due + d.fee_due + d.prin_due)
                             FROM advances_due(ARRAY[p_company_id], p_currency, p_business_date) d), 0),
               0)::numeric(19, 2)
$fn$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("funding", "0021_webhookevent_fewer_indexes"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
