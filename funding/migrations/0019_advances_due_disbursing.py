"""advances_due() also covers `disbursing` advances (issue 13, contract 1.7: an advance is due for what actually
left the bank, even while another of its payouts is unknown or in manual review). own_funds_available() reads it,
so own funds leave that amount too. The SQL is copied here verbatim; funding/sql/advance_reserve.py documents it.
"""

from django.db import migrations

FORWARD = r"""
-- What a company owes for repayment on p_business_date and has not paid: per advance due on or before that
-- date, in a collectable state (funding.models.ADVANCE_COLLECTABLE_STATES: a `disbursing` one owes what its
-- succeeded payouts paid), its penalty, fee and principal not yet
-- repaid. The one definition: repayment collection allocates these rows (settlement.services.repayments) and
-- own_funds_available() keeps their sum out of own funds. Plain SQL, so that the planner inlines it.
CREATE OR REPLACE FUNCTION advances_due(p_company_ids bigint[], p_currency text, p_business_date date)
RETURNS TABLE (id bigint, company_id bigint, credit_line_id bigint, due_date date,
               pen_due numeric, fee_due numeric, prin_due numeric)
LANGUAGE sql STABLE AS $fn$
    SELECT v.id, v.company_id, v.credit_line_id, v.due_date,
           v.penalty_accrued - v.penalty_repaid, v.fee - v.fee_repaid, v.advanced_disbursed - v.principal_repaid
      FROM funding_advance v
     WHERE v.company_id = ANY (p_company_ids)
       AND v.status IN ('disbursed', 'partially_disbursed', 'overdue', 'disbursing')
       AND v.due_date <= p_business_date AND v.currency = p_currency
$fn$;
"""

BACKWARD = r"""
-- What a company owes for repayment on p_business_date and has not paid: per advance due on or before that
-- date, in a repayable state (funding.models.ADVANCE_REPAYABLE_STATES), its penalty, fee and principal not yet
-- repaid. The one definition: repayment collection allocates these rows (settlement.services.repayments) and
-- own_funds_available() keeps their sum out of own funds. Plain SQL, so that the planner inlines it.
CREATE OR REPLACE FUNCTION advances_due(p_company_ids bigint[], p_currency text, p_business_date date)
RETURNS TABLE (id bigint, company_id bigint, credit_line_id bigint, due_date date,
               pen_due numeric, fee_due numeric, prin_due numeric)
LANGUAGE sql STABLE AS $fn$
    SELECT v.id, v.company_id, v.credit_line_id, v.due_date,
           v.penalty_accrued - v.penalty_repaid, v.fee - v.fee_repaid, v.advanced_disbursed - v.principal_repaid
      FROM funding_advance v
     WHERE v.company_id = ANY (p_company_ids)
       AND v.status IN ('disbursed', 'partially_disbursed', 'overdue')
       AND v.due_date <= p_business_date AND v.currency = p_currency
$fn$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("funding", "0018_limit_trigger_margin_setoff"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
