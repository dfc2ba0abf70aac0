"""The ledger's rules as PostgreSQL functions and triggers: no code path (ORM, raw SQL, psql) can break them.

This migration carries the SQL it runs, verbatim (the text of ledger/sql/rules.py when it was written, commit
8877d92): a later edit of that module never changes what this migration did. A change of the rules is a new
migration (see ledger/sql/rules.py).
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger rows are append-only: % on % refused; post a reversing transaction instead',
        TG_OP, TG_TABLE_NAME USING ERRCODE = '23001';
END $$;

CREATE OR REPLACE FUNCTION ledger_stamp_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.posted_xact := txid_current();
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION ledger_check_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n_entries integer;
    unbalanced text;
BEGIN
    SELECT count(*) INTO n_entries FROM ledger_entry WHERE transaction_id = NEW.id;
    IF n_entries < 2 THEN
        RAISE EXCEPTION 'journal transaction % has % entries; at least 2 are required', NEW.id, n_entries
            USING ERRCODE = '23514';
    END IF;
    SELECT string_agg(currency, ',') INTO unbalanced FROM (
        SELECT currency FROM ledger_entry WHERE transaction_id = NEW.id GROUP BY currency
        HAVING sum(CASE direction WHEN 'D' THEN amount ELSE -amount END) <> 0
    ) u;
    IF unbalanced IS NOT NULL THEN
        RAISE EXCEPTION 'journal transaction % does not balance in %', NEW.id, unbalanced
            USING ERRCODE = '23514';
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ledger_apply_entries() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM new_entries e JOIN ledger_journaltransaction t ON t.id = e.transaction_id
        WHERE t.posted_xact IS DISTINCT FROM txid_current()
    ) THEN
        RAISE EXCEPTION 'entries may only be added to a journal transaction created in the same database transaction'
            USING ERRCODE = '23001';
    END IF;
    IF EXISTS (
        SELECT 1 FROM new_entries e JOIN ledger_account a ON a.id = e.account_id WHERE a.currency <> e.currency
    ) THEN
        RAISE EXCEPTION 'entry currency differs from its account currency' USING ERRCODE = '23514';
    END IF;
    -- Lock the touched accounts in id order, so concurrent postings never deadlock on them.
    PERFORM 1 FROM ledger_account WHERE id IN (SELECT account_id FROM new_entries) ORDER BY id FOR NO KEY UPDATE;
    UPDATE ledger_account a
       SET debits_posted = a.debits_posted + s.debits,
           credits_posted = a.credits_posted + s.credits
      FROM (
        SELECT account_id,
               coalesce(sum(amount) FILTER (WHERE direction = 'D'), 0) AS debits,
               coalesce(sum(amount) FILTER (WHERE direction = 'C'), 0) AS credits
          FROM new_entries GROUP BY account_id
      ) s
     WHERE a.id = s.account_id;
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
DROP FUNCTION IF EXISTS ledger_check_transaction_balanced();
DROP FUNCTION IF EXISTS ledger_stamp_transaction();
DROP FUNCTION IF EXISTS ledger_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
