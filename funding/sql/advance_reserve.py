"""advance_reserve(): the database half of funding.services.advances.advance_request, in one round trip.

Why a function: an advance touches six tables (business day, credit line, calendar, the settlement account,
the advance, its payouts). Sent one statement at a time that was 10 round trips and 10 statements to parse
and plan, most of the request's cost (docs/benchmarks.md). PL/pgSQL keeps each statement's plan for the life
of the connection and runs them without leaving the server. Python still validates the input, generates the
public ids and builds the response; the rules that decide (closing day, company and line state, channel
capacity, limit, daily cap) live here and in the CHECK constraints, where they already were.

Order matters: the day's lock shared (end of day waits for requests in flight), own funds held first, the
credit line held LAST by one conditional UPDATE so its row is locked only from there to COMMIT. Own funds come
only from own_funds_available() (contract 1.7: never money due for repayment), computed and held in one UPDATE
after the settlement account's row is locked, the lock repayment collection takes first too. A refusal
after a hold returns through the EXCEPTION block, which rolls the holds and rows of this call back (a
subtransaction), and answers a code instead of raising: the caller's transaction stays usable (the
idempotency record of the refusal is written in it).

Result codes: ok, business_day_closed, company_suspended, credit_line_inactive, credit_line_frozen,
calendar_unavailable, outside_channel_hours, duplicate_external_id, insufficient_limit.

This module documents the CURRENT SQL: the text the latest migration carrying it installed (funding 0025 for
advance_reserve(), issue 15: the payouts' ids returned (payout_ids); 0024: no lock and no own funds hold when the
settlement account has nothing free; 0022
for own_funds_available(), issue 15: PL/pgSQL, so that its plan is kept; 0019 for
advances_due(), issue 13: a partly settled advance is due for what left the bank; 0015 for
advance_reserve() and own_funds_available(), issue 13: own funds never take money that is due;
0013 for the line hold, issue 14: company suspension, D0 channel capacity, daily cap, utilisation thresholds;
0006 for calendar_next_business_day). No migration imports it; each migration carries its own copy
of the text it runs. To change the SQL: edit it here, then copy the new CREATE text verbatim into a new
migration, whose reverse restores the previous text; a changed signature or result type needs a DROP of the old
function first, so that no stale overload stays behind. tests/config/test_sql_versions.py fails until the
migrated database equals this text.
"""

CREATE = r"""
-- The first business day after p_day from the stored calendar, never guessed: every day up to it must be
-- stored in a published year. next_day NULL: unknown; first_missing: the first day not published (NULL when
-- 40 stored days hold no business day). The one definition: funding.services.calendar.next_business_day and
-- advance_reserve() both call it.
CREATE OR REPLACE FUNCTION calendar_next_business_day(p_day date, OUT next_day date, OUT first_missing date)
LANGUAGE plpgsql STABLE AS $fn$
DECLARE
    v_day record;
    v_expected date := p_day + 1;
BEGIN
    FOR v_day IN
        SELECT c.date, c.is_business_day
          FROM funding_calendarday c
         WHERE c.date > p_day AND c.date <= p_day + 40
           AND EXTRACT(YEAR FROM c.date)::int IN (SELECT y.year FROM funding_calendaryear y WHERE y.published)
         ORDER BY c.date
    LOOP
        EXIT WHEN v_day.date <> v_expected;
        IF v_day.is_business_day THEN
            next_day := v_day.date;
            RETURN;
        END IF;
        v_expected := v_expected + 1;
    END LOOP;
    IF v_expected <= p_day + 40 THEN
        first_missing := v_expected;
    END IF;
END
$fn$;

-- Mark the utilisation thresholds (contract 1.7: (reserved + outstanding) / effective_limit) the line has
-- reached on p_business_date and that were not marked on that date yet; returns them, ascending. Locks the
-- line's row first (callers already hold it: the hold's UPDATE, or a service's select_for_update), so a
-- threshold is marked, and its event sent, once per business date.
CREATE OR REPLACE FUNCTION credit_line_thresholds_mark(p_line_id bigint, p_business_date date) RETURNS numeric[]
LANGUAGE plpgsql AS $fn$
DECLARE
    v_line record;
    v_fresh numeric[];
BEGIN
    SELECT l.limit_thresholds, l.effective_limit, l.reserved + l.outstanding AS used,
           CASE WHEN l.thresholds_on = p_business_date THEN l.thresholds_reached ELSE '{}'::numeric[] END AS sent
      INTO v_line
      FROM funding_creditline l WHERE l.id = p_line_id FOR NO KEY UPDATE;
    IF NOT FOUND OR v_line.effective_limit <= 0 THEN
        RETURN '{}'::numeric[];
    END IF;
    v_fresh := ARRAY(SELECT t FROM unnest(v_line.limit_thresholds) t
                      WHERE v_line.used >= t * v_line.effective_limit AND NOT (t = ANY (v_line.sent)) ORDER BY t);
    IF cardinality(v_fresh) > 0 THEN
        UPDATE funding_creditline l SET thresholds_reached = v_line.sent || v_fresh, thresholds_on = p_business_date
         WHERE l.id = p_line_id;
    END IF;
    RETURN v_fresh;
END
$fn$;

-- Hold p_amount of the line if it is active, reserved + outstanding stays within the effective limit, and the
-- line's advances of p_business_date stay within its daily cap: one conditional UPDATE, nothing read before
-- it. The daily counter belongs to `advanced_on`: the first hold of a new business date starts it from zero
-- (and the cap's ceiling from the cap). The CHECKs on limit_ceiling and daily_cap_ceiling are the backstop.
-- held: taken or not; thresholds: the utilisation thresholds this hold reached first on the date (already
-- marked; '{}' when none). The one definition: funding.services.line_counters.line_hold and
-- advance_reserve() both call it.
CREATE OR REPLACE FUNCTION credit_line_hold(p_line_id bigint, p_amount numeric, p_business_date date,
                                            OUT held boolean, OUT thresholds numeric[])
LANGUAGE plpgsql AS $fn$
DECLARE
    v_due boolean;
BEGIN
    UPDATE funding_creditline l
       SET reserved = l.reserved + p_amount,
           advanced_today = CASE WHEN l.advanced_on = p_business_date THEN l.advanced_today ELSE 0 END + p_amount,
           advanced_on = p_business_date,
           daily_cap_ceiling = CASE WHEN l.advanced_on = p_business_date THEN l.daily_cap_ceiling ELSE l.daily_cap END
     WHERE l.id = p_line_id AND l.status = 'active'
       AND l.reserved <= l.effective_limit - l.outstanding - p_amount
       AND (l.daily_cap IS NULL
            OR CASE WHEN l.advanced_on = p_business_date THEN l.advanced_today ELSE 0 END + p_amount <= l.daily_cap)
    RETURNING EXISTS (SELECT 1 FROM unnest(l.limit_thresholds) t
                       WHERE l.effective_limit > 0 AND l.reserved + l.outstanding >= t * l.effective_limit
                         AND NOT (COALESCE(l.thresholds_on = p_business_date, false)
                                  AND t = ANY (l.thresholds_reached)))
      INTO v_due;
    held := FOUND;
    thresholds := CASE WHEN held AND v_due THEN credit_line_thresholds_mark(p_line_id, p_business_date)
                       ELSE '{}'::numeric[] END;
END
$fn$;

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

DROP = (
    "DROP FUNCTION IF EXISTS advance_reserve(bigint, text, text, text, text, text, numeric, boolean, timestamptz,"
    " text[], text[], text[], text[], text[], numeric[]);"
    " DROP FUNCTION IF EXISTS own_funds_available(bigint, text, date);"
    " DROP FUNCTION IF EXISTS advances_due(bigint[], text, date);"
    " DROP FUNCTION IF EXISTS credit_line_hold(bigint, numeric, date);"
    " DROP FUNCTION IF EXISTS credit_line_thresholds_mark(bigint, date);"
    " DROP FUNCTION IF EXISTS calendar_next_business_day(date);"
)
