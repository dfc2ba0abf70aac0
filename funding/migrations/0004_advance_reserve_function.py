from django.db import migrations

from funding.sql.advance_reserve import CREATE, DROP


class Migration(migrations.Migration):
    """advance_reserve(): the database half of an advance request in one round trip (funding/sql)."""

    dependencies = [
        ("funding", "0003_nightly_overdue_penalty_aging"),
        ("settlement", "0005_job_run_fsm"),
        ("ledger", "0002_ledger_rules"),
    ]

    operations = [migrations.RunSQL(CREATE, DROP)]
