from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION funding_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP USING ERRCODE = '23001';
END $$;
CREATE TRIGGER funding_audit_append_only BEFORE UPDATE OR DELETE ON funding_auditevent
    FOR EACH ROW EXECUTE FUNCTION funding_audit_refuse_change();
"""

REVERSE = r"""
DROP TRIGGER IF EXISTS funding_audit_append_only ON funding_auditevent;
DROP FUNCTION IF EXISTS funding_audit_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("funding", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
