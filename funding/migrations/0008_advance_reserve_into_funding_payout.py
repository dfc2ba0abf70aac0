"""advance_reserve() writes the payouts into funding_payout (funding 0007 took the table over from settlement).

Only the INSERT's table changes; the text below is the whole function as this migration installs it, and
the reverse restores the text that wrote settlement_payout (which exists again once 0007 is reversed).
"""

from django.db import migrations

ADVANCE_RESERVE = r"""
CREATE OR REPLACE FUNCTION advance_reserve(
    p_company_id bigint,
    p_company_code text,
    p_settlement_kind text,
    p_currency text,
    p_public_id text,
    p_external_id text,
    p_amount numeric,
    p_use_own_funds boolean,
    p_created_at timestamptz,
    p_payout_public_ids text[],
    p_payout_external_ids text[],
    p_payout_names text[],
    p_payout_account_nos text[],
    p_payout_bank_codes text[],
    p_payout_amounts numeric[],
    OUT code text,
    OUT advance_id bigint,
    OUT line_id bigint,
    OUT business_date date,
    OUT due_date date,
    OUT own_funds numeric,
    OUT own_parts numeric[],
    OUT daily_fee_rate numeric,
    OUT available numeric,
    OUT requested numeric,
    OUT first_missing date
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_closing boolean;
    v_status text;
    v_valid_from date;
    v_valid_to date;
    v_advanced numeric;
    v_constraint text;
BEGIN
    own_funds := 0;
    -- The day's lock, shared until COMMIT: marking the day closing waits for every request in flight
    -- (funding.services.calendar.BUSINESS_DAY_LOCK). Its own statement, so that the read below takes its
    -- snapshot after the wait and sees `closing` set by an end of day that began meanwhile.
    PERFORM pg_advisory_xact_lock_shared(7649, 1);
    SELECT d.current, d.closing INTO business_date, v_closing FROM funding_businessday d WHERE d.singleton;
    IF NOT FOUND OR v_closing THEN
        code := 'business_day_closed';
        RETURN;
    END IF;

    SELECT l.id, l.status, l.valid_from, l.valid_to, l.daily_fee_rate
      INTO line_id, v_status, v_valid_from, v_valid_to, daily_fee_rate
      FROM funding_creditline l
     WHERE l.company_id = p_company_id AND l.status IN ('active', 'frozen', 'suspended')
     ORDER BY l.id LIMIT 1;
    IF NOT FOUND THEN
        code := 'credit_line_inactive';
        RETURN;
    ELSIF v_status = 'frozen' THEN
        code := 'credit_line_frozen';
        RETURN;
    ELSIF v_status <> 'active' OR NOT (business_date BETWEEN v_valid_from AND v_valid_to) THEN
        code := 'credit_line_inactive';
        RETURN;
    END IF;

    SELECT c.next_day, c.first_missing INTO due_date, first_missing
      FROM calendar_next_business_day(business_date) c;
    IF due_date IS NULL THEN
        code := 'calendar_unavailable';
        RETURN;
    END IF;

    BEGIN
        IF p_use_own_funds THEN
            -- Own funds first: hold up to the amount of the settlement balance with one UPDATE.
            WITH target AS (
                SELECT a.id, LEAST(p_amount, a.credits_posted - a.debits_posted - a.debits_pending) AS take
                  FROM ledger_account a
                 WHERE a.kind = p_settlement_kind AND a.owner = p_company_code AND a.currency = p_currency
                   AND a.credits_posted - a.debits_posted - a.debits_pending > 0
                 FOR NO KEY UPDATE
            )
            UPDATE ledger_account a SET debits_pending = a.debits_pending + t.take
              FROM target t WHERE a.id = t.id
            RETURNING t.take INTO own_funds;
            own_funds := COALESCE(own_funds, 0);
        END IF;
        v_advanced := p_amount - own_funds;

        INSERT INTO funding_advance (
            public_id, company_id, credit_line_id, external_id, status, currency, amount, own_funds_amount,
            advanced_amount, disbursed_amount, advanced_disbursed, fee, daily_fee_rate, business_date, due_date,
            principal_repaid, fee_repaid, penalty_accrued, penalty_repaid, penalty_accrued_exact, overdue_since,
            aging_bucket, version, created_at, updated_at
        ) VALUES (
            p_public_id, p_company_id, line_id, p_external_id, 'reserved', p_currency, p_amount, own_funds,
            v_advanced, 0, 0, 0, daily_fee_rate, business_date, due_date,
            0, 0, 0, 0, 0, NULL,
            '', 1, p_created_at, p_created_at
        ) RETURNING id INTO advance_id;

        -- Own funds pay the first payouts in order; the credit line funds the rest.
        SELECT array_agg(LEAST(u.amount, GREATEST(own_funds - (u.before_this), 0)) ORDER BY u.seq) INTO own_parts
          FROM (SELECT a.amount, a.seq, SUM(a.amount) OVER (ORDER BY a.seq) - a.amount AS before_this
                  FROM unnest(p_payout_amounts) WITH ORDINALITY AS a(amount, seq)) u;
        INSERT INTO funding_payout (
            public_id, advance_id, sequence, external_id, beneficiary_name, account_no, bank_code, amount,
            own_funds_amount, advanced_amount, status, attempt_count, failure_code, funds_out, dispatch_after,
            version, created_at, updated_at
        )
        SELECT p.public_id, advance_id, p.seq, p.external_id, p.beneficiary_name, p.account_no, p.bank_code,
               p.amount, p.own_part, p.amount - p.own_part, 'pending', 0, '', false, NULL,
               1, p_created_at, p_created_at
          FROM unnest(p_payout_public_ids, p_payout_external_ids, p_payout_names, p_payout_account_nos,
                      p_payout_bank_codes, p_payout_amounts, own_parts)
               WITH ORDINALITY AS p(public_id, external_id, beneficiary_name, account_no, bank_code, amount, own_part,
                                    seq)
         ORDER BY p.seq;

        -- Hold last: the line's row stays locked only from here to COMMIT.
        IF NOT credit_line_hold(line_id, v_advanced) THEN
            RAISE EXCEPTION USING ERRCODE = 'AE001', MESSAGE = 'advance_reserve: hold refused';
        END IF;
    EXCEPTION
        WHEN unique_violation THEN
            GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
            IF v_constraint = 'funding_advance_external_id_unique' THEN
                code := 'duplicate_external_id';
                advance_id := NULL;
                own_funds := 0;
                own_parts := NULL;
                RETURN;
            END IF;
            RAISE;
        WHEN SQLSTATE 'AE001' THEN
            -- Everything of this block is undone; say why the line refused, and what was asked of it.
            requested := v_advanced;
            advance_id := NULL;
            own_funds := 0;
            own_parts := NULL;
            SELECT l.status, GREATEST(l.effective_limit - l.reserved - l.outstanding, 0)
              INTO v_status, available FROM funding_creditline l WHERE l.id = line_id;
            code := CASE v_status WHEN 'frozen' THEN 'credit_line_frozen'
                                  WHEN 'active' THEN 'insufficient_limit'
                                  ELSE 'credit_line_inactive' END;
            RETURN;
    END;
    code := 'ok';
END
$fn$;
"""


class Migration(migrations.Migration):

    dependencies = [
        ("funding", "0007_take_over_from_settlement"),
        ("settlement", "0007_hand_over_to_funding"),
    ]

    operations = [
        migrations.RunSQL(
            ADVANCE_RESERVE,
            reverse_sql=ADVANCE_RESERVE.replace("INSERT INTO funding_payout (", "INSERT INTO settlement_payout ("),
        ),
    ]
