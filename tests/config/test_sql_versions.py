"""Versioned SQL: the functions and triggers in the migrated database are exactly those the SQL modules document.

Each migration carries the SQL text it runs; the modules under <app>/sql/ document the CURRENT text. The check
asks PostgreSQL itself: it reads every project function (pg_get_functiondef) and trigger (pg_get_triggerdef)
of the migrated test database, then, in a transaction it rolls back, drops every project function (CASCADE,
which takes their triggers along), runs the modules' text and reads the catalog again. Both readings must be
equal, whitespace runs aside: a changed body, a changed signature that left the old overload behind, a function
or trigger the modules do not document, or one they document but no migration installed, all fail. It compares
against the modules' text whatever migration installed it, so a new migration changing the SQL keeps it working.
"""

import ast
import difflib
import importlib
import pkgutil
import re
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

pytestmark = pytest.mark.django_db

# Module -> the name of its text that installs the current SQL (run in this order; triggers need their function).
DOCUMENTED_SQL = {
    "ledger.sql.rules": "FORWARD",
    "funding.sql.audit": "FORWARD",
    "funding.sql.advance_reserve": "CREATE",
    "settlement.sql.channels": "FORWARD",
    "funding.api.sql.idempotency": "FORWARD",
}

# Functions and triggers of the project: in the schema of Django's tables, not part of an extension.
_FUNCTIONS = """
SELECT p.oid::regprocedure::text,
       CASE WHEN p.prokind IN ('f', 'p') THEN pg_get_functiondef(p.oid) ELSE 'prokind ' || p.prokind::text END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = current_schema()
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
"""
_TRIGGERS = """
SELECT t.tgname || ' ON ' || c.relname, pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND n.nspname = current_schema()
"""


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _catalog() -> dict[str, str]:
    """{"function f(int)" | "trigger t ON table": its definition as PostgreSQL prints it}, whitespace runs as one."""
    catalog = {}
    with connection.cursor() as cursor:
        for kind, query in (("function", _FUNCTIONS), ("trigger", _TRIGGERS)):
            cursor.execute(query)
            catalog.update({f"{kind} {name}": _normalised(definition) for name, definition in cursor.fetchall()})
    return catalog


def documented_texts() -> list[str]:
    return [getattr(importlib.import_module(module), name) for module, name in DOCUMENTED_SQL.items()]


class _RollBack(Exception):
    pass


def _documented_catalog() -> dict[str, str]:
    """The catalog as the modules' text alone would make it, read inside a transaction that is rolled back."""
    documented: dict[str, str] = {}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_FUNCTIONS)
            for signature, _ in cursor.fetchall():
                cursor.execute(f"DROP FUNCTION {signature} CASCADE")
            for text in documented_texts():
                cursor.execute(text)
            documented = _catalog()
            raise _RollBack
    except _RollBack:
        pass
    return documented


def sql_drift() -> list[str]:
    """How the migrated database differs from the documented SQL; empty when they are equal."""
    migrated = _catalog()
    documented = _documented_catalog()
    drift = [f"{name}: in the migrated database, documented by no module" for name in sorted(migrated.keys()
                                                                                          - documented.keys())]
    drift += [f"{name}: documented, but no migration installed it" for name in sorted(documented.keys()
                                                                                     - migrated.keys())]
    for name in sorted(migrated.keys() & documented.keys()):
        if migrated[name] != documented[name]:
            diff = difflib.unified_diff(
                documented[name].split(" "), migrated[name].split(" "), "documented", "migrated", lineterm="", n=3)
            drift.append(f"{name}: the migrated definition differs from the module's:\n" + "\n".join(diff))
    return drift


def test_the_migrated_database_has_exactly_the_documented_functions_and_triggers():
    migrated = _catalog()
    # Not vacuous: every function and trigger the modules create is there, under its own name.
    documented_names = set()
    for text in documented_texts():
        documented_names |= {f"function {name}" for name in re.findall(r"CREATE OR REPLACE FUNCTION (\w+)", text)}
        documented_names |= {f"trigger {name} ON {table}" for name, table in re.findall(
            r"CREATE (?:CONSTRAINT )?TRIGGER (\w+) .*? ON (\w+)", text, flags=re.S)}
    found = {name.split("(")[0] for name in migrated}
    assert documented_names - found == set()
    assert "function advance_reserve" in found and len(documented_names) >= 10

    assert sql_drift() == []


def test_a_changed_body_is_drift():
    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE OR REPLACE FUNCTION funding_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP USING ERRCODE = '23001';
                END IF;
                RETURN NEW;
            END $$""")

    drift = sql_drift()

    assert len(drift) == 1
    assert drift[0].startswith("function funding_audit_refuse_change(): the migrated definition differs")
    assert "+RETURN\n+NEW;" in drift[0]  # the diff is word by word


def test_a_stale_overload_and_a_missing_trigger_are_drift():
    with connection.cursor() as cursor:
        # What a migration that changed a signature without dropping the old one would leave behind.
        cursor.execute(
            "CREATE FUNCTION credit_line_hold(p_line_id bigint) RETURNS boolean LANGUAGE sql AS 'SELECT true'")
        cursor.execute("DROP TRIGGER ledger_entry_append_only ON ledger_entry")

    assert sql_drift() == [
        "function credit_line_hold(bigint): in the migrated database, documented by no module",
        "trigger ledger_entry_append_only ON ledger_entry: documented, but no migration installed it",
    ]


def test_the_drift_check_leaves_the_database_as_it_was():
    before = _catalog()
    assert sql_drift() == []
    assert _catalog() == before


def _project_app_configs():
    """The project's own apps (in the checkout, not installed packages, even when the venv lives inside it)."""
    base = Path(settings.BASE_DIR).resolve()
    return [
        app for app in apps.get_app_configs()
        if Path(app.path).resolve().is_relative_to(base) and "site-packages" not in Path(app.path).parts
    ]


def test_every_sql_module_documents_its_sql_for_the_check():
    modules = set()
    for app in _project_app_configs():
        try:
            package = importlib.import_module(f"{app.name}.sql")
        except ModuleNotFoundError:
            continue
        modules |= {f"{app.name}.sql.{info.name}" for info in pkgutil.iter_modules(package.__path__)}

    assert modules == set(DOCUMENTED_SQL)


# A migration may import Django, django-fsm (its field class) and the models modules whose callables its fields
# name as defaults (Django serialises them by reference and compares them by identity). Nothing else of the
# project: a migration must do the same thing whenever it runs.
_ALLOWED_ROOTS = {"django", "django_fsm"}
# A data migration over the live role table (non-strict; the post_migrate hook syncs the roles strictly anyway).
_ALLOWED_EXCEPTIONS = {("console", "0002_roles"): {"funding.console.roles"}}


def _imports(path: Path) -> set[str]:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    return imported


def test_no_migration_imports_live_project_code():
    project_apps = {app.label for app in _project_app_configs()}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    checked = 0
    offending = {}
    for (app_label, name), migration in loader.disk_migrations.items():
        if app_label not in project_apps:
            continue
        checked += 1
        path = Path(sys.modules[migration.__module__].__file__)
        bad = {
            module for module in _imports(path)
            if module.split(".")[0] not in _ALLOWED_ROOTS
            and not re.fullmatch(r"[\w.]+\.models(\.\w+)?", module)
            and module not in _ALLOWED_EXCEPTIONS.get((app_label, name), set())
        }
        if bad:
            offending[f"{app_label}.{name}"] = sorted(bad)

    assert checked >= 15
    assert offending == {}
