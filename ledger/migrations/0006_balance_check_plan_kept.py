"""ledger_unbalanced_journal() in PL/pgSQL (issue 15): as a SQL function with a SET clause it was never inlined,
and PostgreSQL 15 planned its body again at every COMMIT that wrote a journal. Same result; the plan is now kept
per connection. The SQL is copied here verbatim; ledger/sql/rules.py documents it.
"""

from django.db import migrations

FORWARD = r"""
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
"""

BACKWARD = r"""
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
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0005_fewer_indexes"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
