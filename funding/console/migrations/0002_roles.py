"""Create the staff roles (groups with exact permissions) from funding.console.roles.ROLES.

Not strict: this migration's model state lacks models added later; the post_migrate hook syncs strictly.
"""

from django.db import migrations


def create_roles(apps, schema_editor):
    from funding.console.roles import roles_sync

    roles_sync(apps=apps, using=schema_editor.connection.alias, strict=False)


def delete_roles(apps, schema_editor):
    from funding.console.roles import ROLES

    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("funding", "0002_audit_append_only"),
        ("ledger", "0002_ledger_rules"),
        ("settlement", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
