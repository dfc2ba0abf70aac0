# GET /api/v1/events (contract 1.7): the writing transaction's id on each event, and the index its pages use.
#
# Not atomic, and by hand rather than AddField/AddIndex: a volatile column default would rewrite the whole
# table under an exclusive lock, and a plain CREATE INDEX would block event writes (disbursement) while it
# builds. Existing rows get 0 (they are all older than any running transaction; among them, id orders).

from django.db import migrations, models
from django.db.models.expressions import RawSQL


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('funding', '0008_advance_reserve_into_funding_payout'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    sql=[
                        "ALTER TABLE funding_webhookevent ADD COLUMN written_xact bigint NOT NULL DEFAULT 0",
                        "ALTER TABLE funding_webhookevent ALTER COLUMN written_xact "
                        "SET DEFAULT (pg_current_xact_id()::text::bigint)",
                    ],
                    reverse_sql=["ALTER TABLE funding_webhookevent DROP COLUMN written_xact"],
                ),
                migrations.RunSQL(
                    sql="CREATE INDEX CONCURRENTLY IF NOT EXISTS webhookevent_company_xact "
                        "ON funding_webhookevent (company_id, written_xact, id)",
                    reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS webhookevent_company_xact",
                ),
            ],
            state_operations=[
                migrations.AddField(
                    model_name='webhookevent',
                    name='written_xact',
                    field=models.BigIntegerField(db_default=RawSQL('pg_current_xact_id()::text::bigint', ()), editable=False),
                ),
                migrations.AddIndex(
                    model_name='webhookevent',
                    index=models.Index(fields=['company', 'written_xact', 'id'], name='webhookevent_company_xact'),
                ),
            ],
        ),
    ]
