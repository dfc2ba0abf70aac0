from django.db import migrations

from ledger.sql.rules import FORWARD, REVERSE


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
