"""The audit trail and the limit-factor history are append-only, enforced by PostgreSQL: a trigger refuses every
UPDATE and DELETE.

This module documents the CURRENT SQL: the text the latest migrations carrying it installed (funding 0002, and
funding 0011 for the limit-factor snapshots, which reuse the audit's function). No
migration imports it; each migration carries its own copy of the text it runs. To change the SQL: edit it here,
then copy the new text verbatim into a new migration, whose reverse restores the previous text.
tests/config/test_sql_versions.py fails until the migrated database equals this text.
"""

FORWARD = r"""
CREATE OR REPLACE FUNCTION funding_audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % refused', TG_OP USING ERRCODE = '23001';
END $$;
CREATE TRIGGER funding_audit_append_only BEFORE UPDATE OR DELETE ON funding_auditevent
    FOR EACH ROW EXECUTE FUNCTION funding_audit_refuse_change();
CREATE TRIGGER funding_limit_snapshot_append_only BEFORE UPDATE OR DELETE ON funding_limitfactorsnapshot
    FOR EACH ROW EXECUTE FUNCTION funding_audit_refuse_change();
"""

REVERSE = r"""
DROP TRIGGER IF EXISTS funding_limit_snapshot_append_only ON funding_limitfactorsnapshot;
DROP TRIGGER IF EXISTS funding_audit_append_only ON funding_auditevent;
DROP FUNCTION IF EXISTS funding_audit_refuse_change();
"""
