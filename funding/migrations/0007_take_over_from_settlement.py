"""Funding takes over the payout instructions, the companies' bank statements, the penalty accruals and the
aging snapshots from settlement (issue 12: settlement may depend on funding, never the reverse).

The tables are renamed in place (no data moves); the model states move from settlement to funding here and
in settlement 0007. Also creates `funding_payout_attempt_view`, empty: settlement 0007 defines it over its
attempts, so funding reads attempts without knowing settlement's tables.
"""

import django.db.models.deletion
import django.db.models.expressions
import django_fsm
from django.db import migrations, models

import funding.models.payouts

# (old name, new name) of every table, sequence, named constraint and named index that moves.
TABLES = [
    ("settlement_payout", "funding_payout"),
    ("settlement_bankstatementimport", "funding_bankstatementimport"),
    ("settlement_bankstatementline", "funding_bankstatementline"),
    ("settlement_penaltyaccrual", "funding_penaltyaccrual"),
    ("settlement_agingsnapshot", "funding_agingsnapshot"),
]
CONSTRAINTS = [
    ("funding_payout", "settlement_payout_public_id_unique", "funding_payout_public_id_unique"),
    ("funding_payout", "settlement_payout_external_id_unique", "funding_payout_external_id_unique"),
    ("funding_payout", "settlement_payout_sequence_unique", "funding_payout_sequence_unique"),
    ("funding_payout", "settlement_payout_amount_positive", "funding_payout_amount_positive"),
    ("funding_payout", "settlement_payout_split_adds_up", "funding_payout_split_adds_up"),
    ("funding_bankstatementline", "settlement_statement_amount_positive", "funding_statement_amount_positive"),
    ("funding_penaltyaccrual", "settlement_penalty_once_per_day", "funding_penalty_once_per_day"),
    ("funding_agingsnapshot", "settlement_aging_once", "funding_aging_once"),
]
INDEXES = [
    ("settlement__status_e3eed2_idx", "funding_pay_status_d225da_idx"),
    ("settlement__account_b94405_idx", "funding_ban_account_c1f482_idx"),
    ("settlement__accrual_6f51c1_idx", "funding_pen_accrual_b8e764_idx"),
]


def _renames(forward: bool) -> str:
    statements = []
    for old, new in TABLES:
        a, b = (old, new) if forward else (new, old)
        statements.append(f"ALTER TABLE {a} RENAME TO {b};")
        statements.append(f"ALTER SEQUENCE {a}_id_seq RENAME TO {b}_id_seq;")
        statements.append(f"ALTER INDEX {a}_pkey RENAME TO {b}_pkey;")
    for table, old, new in CONSTRAINTS:
        if forward:
            statements.append(f"ALTER TABLE {table} RENAME CONSTRAINT {old} TO {new};")
        else:
            statements.append(f"ALTER TABLE {table.replace('funding_', 'settlement_', 1)} RENAME CONSTRAINT {new} TO {old};")
    for old, new in INDEXES:
        a, b = (old, new) if forward else (new, old)
        statements.append(f"ALTER INDEX {a} RENAME TO {b};")
    return "\n".join(statements)


ATTEMPT_VIEW_EMPTY = """
CREATE VIEW funding_payout_attempt_view AS
SELECT NULL::bigint AS id, NULL::bigint AS payout_id, NULL::smallint AS number, NULL::varchar(64) AS serial,
       NULL::varchar(32) AS channel, NULL::varchar(50) AS status, NULL::varchar(48) AS failure_code
 WHERE false;
"""


class Migration(migrations.Migration):

    dependencies = [
        ('funding', '0006_advance_reserve_v2'),
        ('ledger', '0002_ledger_rules'),
        ('settlement', '0006_payout_fewer_indexes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                # Reverse: the table renames are undone after the constraints (which name the new tables).
                migrations.RunSQL(_renames(True), reverse_sql=_renames(False)),
                migrations.RunSQL(ATTEMPT_VIEW_EMPTY, reverse_sql="DROP VIEW funding_payout_attempt_view;"),
            ],
            state_operations=[
                migrations.CreateModel(
                    name='PayoutAttemptView',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('number', models.PositiveSmallIntegerField()),
                        ('serial', models.CharField(max_length=64)),
                        ('channel', models.CharField(max_length=32)),
                        ('status', models.CharField(max_length=16)),
                        ('failure_code', models.CharField(max_length=48)),
                    ],
                    options={
                        'db_table': 'funding_payout_attempt_view',
                        'ordering': ['payout', 'number'],
                        'managed': False,
                    },
                ),
                migrations.CreateModel(
                    name='BankStatementImport',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('filename', models.CharField(max_length=255)),
                        ('sha256', models.CharField(db_index=True, max_length=64)),
                        ('imported_by', models.CharField(help_text='username or command', max_length=150)),
                        ('lines_total', models.PositiveIntegerField(default=0)),
                        ('lines_imported', models.PositiveIntegerField(default=0)),
                        ('lines_skipped', models.PositiveIntegerField(default=0)),
                        ('lines_rejected', models.PositiveIntegerField(default=0)),
                        ('credits_total', models.DecimalField(decimal_places=2, default=0, max_digits=19)),
                        ('debits_total', models.DecimalField(decimal_places=2, default=0, max_digits=19)),
                        ('rejections', models.JSONField(blank=True, default=list)),
                        ('started_at', models.DateTimeField(auto_now_add=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'ordering': ['-started_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='AgingSnapshot',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('business_date', models.DateField()),
                        ('bucket', models.CharField(choices=[('1-3', '1-3 days'), ('4-7', '4-7 days'), ('8-30', '8-30 days'), ('>30', 'over 30 days')], max_length=8)),
                        ('advances', models.PositiveIntegerField()),
                        ('outstanding', models.DecimalField(decimal_places=2, max_digits=19)),
                        ('company', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='funding.company')),
                    ],
                    options={
                        'ordering': ['business_date', 'company', 'bucket'],
                        'constraints': [models.UniqueConstraint(fields=('business_date', 'company', 'bucket'), name='funding_aging_once')],
                    },
                ),
                migrations.CreateModel(
                    name='BankStatementLine',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('line_no', models.PositiveIntegerField()),
                        ('reference', models.CharField(max_length=64, unique=True)),
                        ('value_date', models.DateField(db_index=True)),
                        ('account_no', models.CharField(max_length=34)),
                        ('direction', models.CharField(choices=[('C', 'Credit'), ('D', 'Debit')], max_length=1)),
                        ('amount', models.DecimalField(decimal_places=2, max_digits=19)),
                        ('counterparty', models.CharField(blank=True, default='', max_length=200)),
                        ('memo', models.CharField(blank=True, default='', max_length=255)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('account', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.account')),
                        ('journal', models.OneToOneField(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.journaltransaction')),
                        ('statement', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='lines', to='funding.bankstatementimport')),
                    ],
                    options={
                        'ordering': ['statement', 'line_no'],
                        'indexes': [models.Index(fields=['account', 'value_date'], name='funding_ban_account_c1f482_idx')],
                        'constraints': [models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='funding_statement_amount_positive')],
                    },
                ),
                migrations.CreateModel(
                    name='Payout',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('public_id', models.CharField(default=funding.models.payouts.new_payout_id, editable=False, max_length=40)),
                        ('sequence', models.PositiveIntegerField()),
                        ('external_id', models.CharField(max_length=64)),
                        ('beneficiary_name', models.CharField(max_length=100)),
                        ('account_no', models.CharField(max_length=32)),
                        ('bank_code', models.CharField(max_length=16)),
                        ('amount', models.DecimalField(decimal_places=2, max_digits=19)),
                        ('own_funds_amount', models.DecimalField(decimal_places=2, default=0, max_digits=19)),
                        ('advanced_amount', models.DecimalField(decimal_places=2, default=0, max_digits=19)),
                        ('status', django_fsm.FSMField(choices=[('pending', 'Pending'), ('processing', 'Processing'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('unknown', 'Unknown'), ('manual_review', 'Manual review'), ('cancelled', 'Cancelled')], default='pending', max_length=50, protected=True)),
                        ('attempt_count', models.PositiveSmallIntegerField(default=0)),
                        ('failure_code', models.CharField(blank=True, default='', max_length=48)),
                        ('funds_out', models.BooleanField(default=False)),
                        ('dispatch_after', models.DateTimeField(blank=True, null=True)),
                        ('version', models.PositiveIntegerField(default=1)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('advance', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='payouts', to='funding.advance')),
                    ],
                    options={
                        'ordering': ['advance_id', 'sequence'],
                        'indexes': [models.Index(fields=['status', 'updated_at'], name='funding_pay_status_d225da_idx')],
                        'constraints': [models.UniqueConstraint(fields=('public_id',), name='funding_payout_public_id_unique'), models.UniqueConstraint(fields=('advance', 'external_id'), name='funding_payout_external_id_unique'), models.UniqueConstraint(fields=('advance', 'sequence'), name='funding_payout_sequence_unique'), models.CheckConstraint(condition=models.Q(('amount__gt', 0)), name='funding_payout_amount_positive'), models.CheckConstraint(condition=models.Q(('amount', django.db.models.expressions.CombinedExpression(models.F('own_funds_amount'), '+', models.F('advanced_amount'))), ('own_funds_amount__gte', 0), ('advanced_amount__gte', 0)), name='funding_payout_split_adds_up')],
                    },
                    bases=(django_fsm.FSMModelMixin, models.Model),
                ),
                migrations.CreateModel(
                    name='PenaltyAccrual',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('accrual_date', models.DateField()),
                        ('days', models.PositiveSmallIntegerField()),
                        ('base', models.DecimalField(decimal_places=2, max_digits=19)),
                        ('penalty_rate', models.DecimalField(decimal_places=6, max_digits=12)),
                        ('amount_exact', models.DecimalField(decimal_places=8, max_digits=24)),
                        ('posted', models.DecimalField(decimal_places=2, max_digits=19)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('advance', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='penalty_accruals', to='funding.advance')),
                    ],
                    options={
                        'indexes': [models.Index(fields=['accrual_date'], name='funding_pen_accrual_b8e764_idx')],
                        'constraints': [models.UniqueConstraint(fields=('advance', 'accrual_date'), name='funding_penalty_once_per_day')],
                    },
                ),
            ],
        ),
        migrations.AddField(
            model_name='payoutattemptview',
            name='payout',
            field=models.ForeignKey(on_delete=django.db.models.deletion.DO_NOTHING, related_name='attempt_views', to='funding.payout'),
        ),
    ]
