"""A channel's code is fixed once created, enforced by PostgreSQL: ledger accounts are keyed by it.

This module documents the CURRENT SQL: the text the latest migration carrying it installed (settlement 0009).
No migration imports it; each migration carries its own copy of the text it runs. To change the SQL: edit it
here, then copy the new text verbatim into a new migration, whose reverse restores the previous text.
tests/config/test_sql_versions.py fails until the migrated database equals this text.
"""

FORWARD = r"""
CREATE OR REPLACE FUNCTION settlement_channel_code_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'channel code % is fixed once created (ledger accounts are keyed by it)', OLD.code
        USING ERRCODE = '23001';
END $$;
CREATE TRIGGER settlement_channel_code_fixed BEFORE UPDATE OF code ON settlement_channel
    FOR EACH ROW WHEN (NEW.code IS DISTINCT FROM OLD.code) EXECUTE FUNCTION settlement_channel_code_fixed();
"""

REVERSE = r"""
DROP TRIGGER IF EXISTS settlement_channel_code_fixed ON settlement_channel;
DROP FUNCTION IF EXISTS settlement_channel_code_fixed();
"""
