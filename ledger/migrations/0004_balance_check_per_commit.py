"""The ledger's balance check once per COMMIT, set-based, and its queries planned with sequential scans off.

Carries the SQL it runs, verbatim (the functions of ledger/sql/rules.py when it was written); the triggers are
unchanged (same functions, same events). See that module's docstring for why. The reverse restores the text of
0002 and drops the new helper functions.
"""

from django.db import migrations

FORWARD = r"""

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

CREATE OR REPLACE FUNCTION ledger_unbalanced_journal(
    from_id bigint, OUT journal_id bigint, OUT entries bigint, OUT unbalanced text
) LANGUAGE sql SET enable_seqscan = off AS $$
    WITH per_currency AS (
        SELECT t.id, e.currency, count(e.id) AS n,
               sum(CASE e.direction WHEN 'D' THEN e.amount ELSE -e.amount END) AS net
          FROM ledger_journaltransaction t
          LEFT JOIN ledger_entry e ON e.transaction_id = t.id
         WHERE t.id >= from_id AND t.posted_xact = txid_current()
         GROUP BY t.id, e.currency
    )
    SELECT id, sum(n)::bigint, string_agg(currency, ',' ORDER BY currency) FILTER (WHERE net <> 0)
      FROM per_currency
     GROUP BY id
    HAVING sum(n) < 2 OR bool_or(net <> 0)
     ORDER BY id
     LIMIT 1
$$;

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
"""

REVERSE = r"""CREATE OR REPLACE FUNCTION ledger_stamp_transaction() RETURNS trigger LANGUAGE plpgsql AS $$
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

DROP FUNCTION IF EXISTS ledger_apply_totals(bigint[], bigint[], text[], numeric[], numeric[]);
DROP FUNCTION IF EXISTS ledger_unbalanced_journal(bigint);
DROP FUNCTION IF EXISTS ledger_mark_unchecked(bigint);
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_reconciliation_difference_kind")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
