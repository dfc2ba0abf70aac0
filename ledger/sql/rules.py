"""The ledger's rules, written in PostgreSQL so that no code path (ORM, raw SQL, psql) can break them.

This module documents the CURRENT SQL: the text the latest migration carrying it installed (ledger 0004; 0006 for
ledger_unbalanced_journal(), issue 15: PL/pgSQL, so that its plan is kept). No
migration imports it; each migration carries its own copy of the text it runs. To change the SQL: edit it here,
then copy the new text verbatim into a new migration (CREATE OR REPLACE FUNCTION; DROP and CREATE a trigger
whose definition changes), whose reverse restores the previous text; a changed signature needs a DROP of the
old function first, so that no stale overload stays behind. tests/config/test_sql_versions.py fails until the
migrated database equals this text.

Cost (issue 15): a payout writes three journals. The balance check runs once per COMMIT over every journal the
transaction wrote (ledger_unbalanced_journal), not once per journal: the deferred trigger still fires per
journal, and all but the first firing of a commit find nothing unchecked (the transaction-local setting
`ledger.unchecked_from`, the lowest journal id written or extended since the last check). The queries that join
the ledger's tables run with sequential scans off: a plan cached while a table looked empty (a fresh database,
statistics not yet gathered) would otherwise scan the whole journal for every new entry, for as long as the
session lives.
"""

FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused; post a reversing transaction instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = '23001';
END $$;

CREATE OR REPLACE FUNCTION ledger_mark_unchecked(journal_id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    unchecked text := current_setting('ledger.unchecked_from', true);
BEGIN
    -- Transaction-local (undone with a rolled-back savepoint, together with what it marks).
    IF unchecked IS NULL OR unchecked = '' OR journal_id < unchecked::bigint THEN
        PERFORM set_config('ledger.unchecked_from', journal_id::text, true);
    END IF;
END $$;

CREATE OR REPLACE FUNCTION ledger_stamp_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.posted_xact := txid_current();
    PERFORM ledger_mark_unchecked(NEW.id);
    RETURN NEW;
END $$;

-- PL/pgSQL, not SQL: a SQL function with a SET clause is never inlined, and PostgreSQL 15 plans its body again
-- on every call, every COMMIT that wrote a journal; PL/pgSQL keeps the plan per connection (made with
-- sequential scans off, as the SET says).
CREATE OR REPLACE FUNCTION ledger_unbalanced_journal(
    from_id bigint, OUT journal_id bigint, OUT entries bigint, OUT unbalanced text
) LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    WITH per_currency AS (
        SELECT t.id, e.currency, count(e.id) AS n,
               sum(CASE e.direction WHEN 'D' THEN e.amount ELSE -e.amount END) AS net
          FROM ledger_journaltransaction t
          LEFT JOIN ledger_entry e ON e.transaction_id = t.id
         WHERE t.id >= from_id AND t.posted_xact = txid_current()
         GROUP BY t.id, e.currency
    )
    SELECT p.id, sum(p.n)::bigint, string_agg(p.currency, ',' ORDER BY p.currency) FILTER (WHERE p.net <> 0)
      INTO journal_id, entries, unbalanced
      FROM per_currency p
     GROUP BY p.id
    HAVING sum(p.n) < 2 OR bool_or(p.net <> 0)
     ORDER BY p.id
     LIMIT 1;
END $$;

CREATE OR REPLACE FUNCTION ledger_check_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    unchecked text := current_setting('ledger.unchecked_from', true);
    bad record;
BEGIN
    IF unchecked IS NULL OR unchecked = '' THEN
        RETURN NULL;  -- an earlier firing of this commit checked every journal this one could be
    END IF;
    SELECT * INTO bad FROM ledger_unbalanced_journal(unchecked::bigint);
    IF bad.journal_id IS NOT NULL THEN
        IF bad.entries < 2 THEN
            RAISE EXCEPTION 'journal transaction % has % entries; at least 2 are required', bad.journal_id,
                bad.entries USING ERRCODE = '23514';
        END IF;
        RAISE EXCEPTION 'journal transaction % does not balance in %', bad.journal_id, bad.unbalanced
            USING ERRCODE = '23514';
    END IF;
    PERFORM set_config('ledger.unchecked_from', '', true);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ledger_apply_totals(
    journal_ids bigint[], account_ids bigint[], currencies text[], debits numeric[], credits numeric[]
) RETURNS void LANGUAGE plpgsql SET enable_seqscan = off AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM ledger_journaltransaction
         WHERE id = ANY (journal_ids) AND posted_xact IS DISTINCT FROM txid_current()
    ) THEN
        RAISE EXCEPTION 'entries may only be added to a journal transaction created in the same database transaction'
            USING ERRCODE = '23001';
    END IF;
    -- Before the UPDATE: with one currency per account, each account appears once in the arrays.
    IF EXISTS (
        SELECT 1 FROM unnest(account_ids, currencies) AS n (id, currency)
          JOIN ledger_account a ON a.id = n.id
         WHERE a.currency <> n.currency
    ) THEN
        RAISE EXCEPTION 'entry currency differs from its account currency' USING ERRCODE = '23514';
    END IF;
    -- Lock the touched accounts in id order, so concurrent postings never deadlock on them.
    PERFORM 1 FROM ledger_account WHERE id = ANY (account_ids) ORDER BY id FOR NO KEY UPDATE;
    UPDATE ledger_account a
       SET debits_posted = a.debits_posted + s.debits,
           credits_posted = a.credits_posted + s.credits
      FROM unnest(account_ids, debits, credits) AS s (id, debits, credits)
     WHERE a.id = s.id;
END $$;

CREATE OR REPLACE FUNCTION ledger_apply_entries() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    journal_ids bigint[];
    account_ids bigint[];
    currencies text[];
    debits numeric[];
    credits numeric[];
BEGIN
    -- Only the new entries are read here; the tables are read by ledger_apply_totals.
    SELECT array_agg(DISTINCT transaction_id ORDER BY transaction_id) INTO journal_ids FROM new_entries;
    SELECT array_agg(account_id ORDER BY account_id, currency), array_agg(currency ORDER BY account_id, currency),
           array_agg(d ORDER BY account_id, currency), array_agg(c ORDER BY account_id, currency)
      INTO account_ids, currencies, debits, credits
      FROM (
        SELECT account_id, currency,
               coalesce(sum(amount) FILTER (WHERE direction = 'D'), 0) AS d,
               coalesce(sum(amount) FILTER (WHERE direction = 'C'), 0) AS c
          FROM new_entries GROUP BY account_id, currency
      ) s;
    IF journal_ids IS NULL THEN
        RETURN NULL;  -- an INSERT of no rows
    END IF;
    PERFORM ledger_apply_totals(journal_ids, account_ids, currencies, debits, credits);
    -- Entries extend their journals: checked again at COMMIT with the others.
    PERFORM ledger_mark_unchecked(journal_ids[1]);
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_transaction_stamp BEFORE INSERT ON ledger_journaltransaction
    FOR EACH ROW EXECUTE FUNCTION ledger_stamp_transaction();
CREATE TRIGGER ledger_transaction_append_only BEFORE UPDATE OR DELETE ON ledger_journaltransaction
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE CONSTRAINT TRIGGER ledger_transaction_balanced AFTER INSERT ON ledger_journaltransaction
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_transaction_balanced();
CREATE TRIGGER ledger_entry_append_only BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER ledger_entry_apply AFTER INSERT ON ledger_entry
    REFERENCING NEW TABLE AS new_entries FOR EACH STATEMENT EXECUTE FUNCTION ledger_apply_entries();
"""

REVERSE = r"""
DROP TRIGGER IF EXISTS ledger_entry_apply ON ledger_entry;
DROP TRIGGER IF EXISTS ledger_entry_append_only ON ledger_entry;
DROP TRIGGER IF EXISTS ledger_transaction_balanced ON ledger_journaltransaction;
DROP TRIGGER IF EXISTS ledger_transaction_append_only ON ledger_journaltransaction;
DROP TRIGGER IF EXISTS ledger_transaction_stamp ON ledger_journaltransaction;
DROP FUNCTION IF EXISTS ledger_apply_entries();
DROP FUNCTION IF EXISTS ledger_apply_totals(bigint[], bigint[], text[], numeric[], numeric[]);
DROP FUNCTION IF EXISTS ledger_check_transaction_balanced();
DROP FUNCTION IF EXISTS ledger_unbalanced_journal(bigint);
DROP FUNCTION IF EXISTS ledger_stamp_transaction();
DROP FUNCTION IF EXISTS ledger_mark_unchecked(bigint);
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""
