"""advance_reserve() (issue 15): returns the payouts' ids (OUT payout_ids, in sequence order), so that the instances
advance_request builds from its row are complete, primary keys included. A new result column: the function is dropped
and created again. The SQL is copied here verbatim; funding/sql/advance_reserve.py documents it.
"""

from django.db import migrations

FORWARD = r"""
DROP FUNCTION IF EXISTS advance_reserve(bigint, text, text, text, text, text, numeric, boolean, timestamptz, text[],
    text[], text[], text[], text[], numeric[]);

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
    OUT first_missing date,
    OUT daily_remaining numeric,
    OUT unpayable integer[],
    OUT thresholds numeric[],
    OUT payout_ids bigint[]
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_closing boolean;
    v_company_status text;
    v_status text;
    v_valid_from date;
    v_valid_to date;
    v_advanced numeric;
    v_held boolean;
    v_local timestamp;
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

    -- The company's status and its live line, in one statement.
    SELECT c.status, l.id, l.status, l.valid_from, l.valid_to, l.daily_fee_rate
      INTO v_company_status, line_id, v_status, v_valid_from, v_valid_to, daily_fee_rate
      FROM funding_company c
      LEFT JOIN LATERAL (
            SELECT l.id, l.status, l.valid_from, l.valid_to, l.daily_fee_rate
              FROM funding_creditline l
             WHERE l.company_id = c.id AND l.status IN ('active', 'frozen', 'suspended')
             ORDER BY l.id LIMIT 1) l ON true
     WHERE c.id = p_company_id;
    IF v_company_status = 'suspended' THEN
        code := 'company_suspended';
        line_id := NULL;
        daily_fee_rate := NULL;
        RETURN;
    ELSIF line_id IS NULL THEN
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

    -- D0 means today (contract 1.7): every payout must be payable by some channel on this business date: an
    -- enabled channel whose amount range and banks fit, open 7x24 or before its cut-off of the business date
    -- (service hours are Shanghai time). The view is settlement's (settlement 0008); with no channel
    -- configured at all (a fresh install) there is nothing to judge by.
    IF EXISTS (SELECT 1 FROM funding_channel_capacity_view) THEN
        v_local := p_created_at AT TIME ZONE 'Asia/Shanghai';
        -- The channels open for the rest of the business date, read once; then each payout against them.
        WITH open_channels AS MATERIALIZED (
            SELECT c.min_amount, c.max_amount, c.bank_codes
              FROM funding_channel_capacity_view c
             WHERE c.enabled
               AND (c.service_start IS NULL OR c.service_end IS NULL
                    OR v_local < business_date + c.service_end
                                 + CASE WHEN c.service_start > c.service_end THEN interval '1 day'
                                        ELSE interval '0' END))
        SELECT array_agg(u.seq - 1 ORDER BY u.seq) INTO unpayable
          FROM unnest(p_payout_amounts, p_payout_bank_codes) WITH ORDINALITY AS u(amount, bank_code, seq)
         WHERE NOT EXISTS (
                SELECT 1 FROM open_channels c
                 WHERE u.amount BETWEEN c.min_amount AND c.max_amount
                   AND (cardinality(c.bank_codes) = 0 OR u.bank_code = ANY (c.bank_codes)));
        IF unpayable IS NOT NULL THEN
            code := 'outside_channel_hours';
            RETURN;
        END IF;
    END IF;

    BEGIN
        -- An account with nothing free (its balance less own funds already held: own_funds_available before it
        -- subtracts what is due) gives nothing: no lock, no hold. Read without a lock, which only leaves money
        -- arriving meanwhile to the next advance; what is free only shrinks under the lock taken below.
        IF p_use_own_funds AND EXISTS (
               SELECT 1 FROM ledger_account a
                WHERE a.kind = p_settlement_kind AND a.owner = p_company_code AND a.currency = p_currency
                  AND a.credits_posted - a.debits_posted - a.debits_pending > 0) THEN
            -- Own funds first, only from what is free of repayments due (own_funds_available). The settlement
            -- account is locked by its own statement first: a repayment collection in flight locks it before
            -- it reads what is due, so once this returns the collection has committed, and the UPDATE below
            -- (a new snapshot) sees what it took; a collection starting later waits for this COMMIT and finds
            -- the due money untouched. The amount is computed and held in that one UPDATE, under the lock.
            PERFORM 1 FROM ledger_account a
              WHERE a.kind = p_settlement_kind AND a.owner = p_company_code AND a.currency = p_currency
              FOR NO KEY UPDATE;
            UPDATE ledger_account a SET debits_pending = a.debits_pending + f.take
              FROM (SELECT LEAST(p_amount, own_funds_available(p_company_id, p_currency, business_date)) AS take) f
             WHERE a.kind = p_settlement_kind AND a.owner = p_company_code AND a.currency = p_currency
               AND f.take > 0
            RETURNING f.take INTO own_funds;
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
        WITH inserted AS (
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
                   WITH ORDINALITY AS p(public_id, external_id, beneficiary_name, account_no, bank_code, amount,
                                        own_part, seq)
             ORDER BY p.seq
            RETURNING id, sequence)
        SELECT array_agg(i.id ORDER BY i.sequence) INTO payout_ids FROM inserted i;

        -- Hold last: the line's row stays locked only from here to COMMIT.
        SELECT h.held, h.thresholds INTO v_held, thresholds FROM credit_line_hold(line_id, v_advanced, business_date) h;
        IF NOT v_held THEN
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
                payout_ids := NULL;
                RETURN;
            END IF;
            RAISE;
        WHEN SQLSTATE 'AE001' THEN
            -- Everything of this block is undone; say why the line refused, and what was asked of it. The
            -- daily cap's remainder is named only where it decided.
            requested := v_advanced;
            advance_id := NULL;
            own_funds := 0;
            own_parts := NULL;
            payout_ids := NULL;
            thresholds := NULL;
            SELECT l.status, GREATEST(l.effective_limit - l.reserved - l.outstanding, 0),
                   CASE WHEN l.daily_cap IS NOT NULL
                        THEN GREATEST(l.daily_cap - CASE WHEN l.advanced_on = business_date THEN l.advanced_today
                                                         ELSE 0 END, 0) END
              INTO v_status, available, daily_remaining FROM funding_creditline l WHERE l.id = line_id;
            available := LEAST(available, COALESCE(daily_remaining, available));
            IF NOT daily_remaining < v_advanced THEN  -- NULL (no cap) included: the cap did not decide
                daily_remaining := NULL;
            END IF;
            code := CASE v_status WHEN 'frozen' THEN 'credit_line_frozen'
                                  WHEN 'active' THEN 'insufficient_limit'
                                  ELSE 'credit_line_inactive' END;
            RETURN;
    END;
    code := 'ok';
END
$fn$;
"""

BACKWARD = r"""
DROP FUNCTION IF EXISTS advance_reserve(bigint, text, text, text, text, text, numeric, boolean, timestamptz, text[],
    text[], text[], text[], text[], numeric[]);

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
    OUT first_missing date,
    OUT daily_remaining numeric,
    OUT unpayable integer[],
    OUT thresholds numeric[]
) LANGUAGE plpgsql AS $fn$
DECLARE
    v_closing boolean;
    v_company_status text;
    v_status text;
    v_valid_from date;
    v_valid_to date;
    v_advanced numeric;
    v_held boolean;
    v_local timestamp;
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

    -- The company's status and its live line, in one statement.
    SELECT c.status, l.id, l.status, l.valid_from, l.valid_to, l.daily_fee_rate
      INTO v_company_status, line_id, v_status, v_valid_from, v_valid_to, daily_fee_rate
      FROM funding_company c
      LEFT JOIN LATERAL (
            SELECT l.id, l.status, l.valid_from, l.valid_to, l.daily_fee_rate
              FROM funding_creditline l
             WHERE l.company_id = c.id AND l.status IN ('active', 'frozen', 'suspended')
             ORDER BY l.id LIMIT 1) l ON true
     WHERE c.id = p_company_id;
    IF v_company_status = 'suspended' THEN
        code := 'company_suspended';
        line_id := NULL;
        daily_fee_rate := NULL;
        RETURN;
    ELSIF line_id IS NULL THEN
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

    -- D0 means today (contract 1.7): every payout must be payable by some channel on this business date: an
    -- enabled channel whose amount range and banks fit, open 7x24 or before its cut-off of the business date
    -- (service hours are Shanghai time). The view is settlement's (settlement 0008); with no channel
    -- configured at all (a fresh install) there is nothing to judge by.
    IF EXISTS (SELECT 1 FROM funding_channel_capacity_view) THEN
        v_local := p_created_at AT TIME ZONE 'Asia/Shanghai';
        -- The channels open for the rest of the business date, read once; then each payout against them.
        WITH open_channels AS MATERIALIZED (
            SELECT c.min_amount, c.max_amount, c.bank_codes
              FROM funding_channel_capacity_view c
             WHERE c.enabled
               AND (c.service_start IS NULL OR c.service_end IS NULL
                    OR v_local < business_date + c.service_end
                                 + CASE WHEN c.service_start > c.service_end THEN interval '1 day'
                                        ELSE interval '0' END))
        SELECT array_agg(u.seq - 1 ORDER BY u.seq) INTO unpayable
          FROM unnest(p_payout_amounts, p_payout_bank_codes) WITH ORDINALITY AS u(amount, bank_code, seq)
         WHERE NOT EXISTS (
                SELECT 1 FROM open_channels c
                 WHERE u.amount BETWEEN c.min_amount AND c.max_amount
                   AND (cardinality(c.bank_codes) = 0 OR u.bank_code = ANY (c.bank_codes)));
        IF unpayable IS NOT NULL THEN
            code := 'outside_channel_hours';
            RETURN;
        END IF;
    END IF;

    BEGIN
        -- An account with nothing free (its balance less own funds already held: own_funds_available before it
        -- subtracts what is due) gives nothing: no lock, no hold. Read without a lock, which only leaves money
        -- arriving meanwhile to the next advance; what is free only shrinks under the lock taken below.
        IF p_use_own_funds AND EXISTS (
               SELECT 1 FROM ledger_account a
                WHERE a.kind = p_settlement_kind AND a.owner = p_company_code AND a.currency = p_currency
                  AND a.credits_posted - a.debits_posted - a.debits_pending > 0) THEN
            -- Own funds first, only from what is free of repayments due (own_funds_available). The settlement
            -- account is locked by its own statement first: a repayment collection in flight locks it before
            -- it reads what is due, so once this returns the collection has committed, and the UPDATE below
            -- (a new snapshot) sees what it took; a collection starting later waits for this COMMIT and finds
            -- the due money untouched. The amount is computed and held in that one UPDATE, under the lock.
            PERFORM 1 FROM ledger_account a
              WHERE a.kind = p_settlement_kind AND a.owner = p_company_code AND a.currency = p_currency
              FOR NO KEY UPDATE;
            UPDATE ledger_account a SET debits_pending = a.debits_pending + f.take
              FROM (SELECT LEAST(p_amount, own_funds_available(p_company_id, p_currency, business_date)) AS take) f
             WHERE a.kind = p_settlement_kind AND a.owner = p_company_code AND a.currency = p_currency
               AND f.take > 0
            RETURNING f.take INTO own_funds;
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
        SELECT h.held, h.thresholds INTO v_held, thresholds FROM credit_line_hold(line_id, v_advanced, business_date) h;
        IF NOT v_held THEN
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
            -- Everything of this block is undone; say why the line refused, and what was asked of it. The
            -- daily cap's remainder is named only where it decided.
            requested := v_advanced;
            advance_id := NULL;
            own_funds := 0;
            own_parts := NULL;
            thresholds := NULL;
            SELECT l.status, GREATEST(l.effective_limit - l.reserved - l.outstanding, 0),
                   CASE WHEN l.daily_cap IS NOT NULL
                        THEN GREATEST(l.daily_cap - CASE WHEN l.advanced_on = business_date THEN l.advanced_today
                                                         ELSE 0 END, 0) END
              INTO v_status, available, daily_remaining FROM funding_creditline l WHERE l.id = line_id;
            available := LEAST(available, COALESCE(daily_remaining, available));
            IF NOT daily_remaining < v_advanced THEN  -- NULL (no cap) included: the cap did not decide
                daily_remaining := NULL;
            END IF;
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
        ("funding", "0024_advance_reserve_nothing_free"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
