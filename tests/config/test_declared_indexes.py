"""Every unique constraint and index the models declare exists in the migrated database.

Django's AlterField(db_index=False) drops every index on exactly that column, a partial unique index declared
in Meta included (it did so to the one-live-attempt-per-payout guard of issue 15's index diet until the
migration dropped the FK index by name): nothing but this check would notice the guard gone.
"""

import pytest
from django.apps import apps
from django.db import connection
from django.db.models import Index, UniqueConstraint

pytestmark = pytest.mark.django_db


def test_every_declared_unique_constraint_and_index_is_in_the_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
        indexes = {name for (name,) in cursor.fetchall()}
    declared = {
        (model._meta.label, item.name)
        for model in apps.get_models()
        for item in [*model._meta.constraints, *model._meta.indexes]
        if isinstance(item, UniqueConstraint | Index)
    }
    assert ("settlement.PayoutAttempt", "settlement_one_live_attempt_per_payout") in declared
    assert {(label, name) for label, name in declared if name not in indexes} == set()
