"""Settlement hands the payout instructions, bank statements, penalty accruals and aging snapshots to funding
(funding 0007 renamed the tables; only model state moves here), and defines the attempt view funding reads."""

import django.db.models.deletion
from django.db import migrations, models

ATTEMPT_VIEW = """
CREATE OR REPLACE VIEW funding_payout_attempt_view AS
SELECT t.id, t.payout_id, t.number, t.serial::varchar(64) AS serial, c.code::varchar(32) AS channel,
       t.status::varchar(50) AS status, t.failure_code::varchar(48) AS failure_code
  FROM settlement_payoutattempt t
  JOIN settlement_channel c ON c.id = t.channel_id;
"""

ATTEMPT_VIEW_EMPTY = """
CREATE OR REPLACE VIEW funding_payout_attempt_view AS
SELECT NULL::bigint AS id, NULL::bigint AS payout_id, NULL::smallint AS number, NULL::varchar(64) AS serial,
       NULL::varchar(32) AS channel, NULL::varchar(50) AS status, NULL::varchar(48) AS failure_code
 WHERE false;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('funding', '0007_take_over_from_settlement'),
        ('settlement', '0006_payout_fewer_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name='bankstatementline',
                    name='statement',
                ),
                migrations.RemoveField(
                    model_name='bankstatementline',
                    name='account',
                ),
                migrations.RemoveField(
                    model_name='bankstatementline',
                    name='journal',
                ),
                migrations.RemoveField(
                    model_name='payout',
                    name='advance',
                ),
                migrations.AlterField(
                    model_name='manualreview',
                    name='payout',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reviews', to='funding.payout'),
                ),
                migrations.AlterField(
                    model_name='payoutattempt',
                    name='payout',
                    field=models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='attempts', to='funding.payout'),
                ),
                migrations.RemoveField(
                    model_name='penaltyaccrual',
                    name='advance',
                ),
                migrations.DeleteModel(
                    name='AgingSnapshot',
                ),
                migrations.DeleteModel(
                    name='BankStatementImport',
                ),
                migrations.DeleteModel(
                    name='BankStatementLine',
                ),
                migrations.DeleteModel(
                    name='Payout',
                ),
                migrations.DeleteModel(
                    name='PenaltyAccrual',
                ),
            ],
        ),
        migrations.RunSQL(ATTEMPT_VIEW, reverse_sql=ATTEMPT_VIEW_EMPTY),
    ]
