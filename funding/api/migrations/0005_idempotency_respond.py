"""api_idempotency_respond() (issue 15): a request that is one statement outside any transaction stores its answer
in that statement, or declines (AI002) and undoes it. The SQL is copied here verbatim; funding/api/sql/idempotency.py
documents it.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION api_idempotency_respond(
    p_plain boolean, p_record_id bigint, p_status integer, p_body text, p_completed_at timestamptz
) RETURNS text
LANGUAGE plpgsql AS $fn$
BEGIN
    IF p_plain IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'AI002',
            MESSAGE = 'not answered in this statement: the request takes the transactional way';
    END IF;
    PERFORM api_idempotency_complete(p_record_id, p_status, p_body, p_completed_at);
    RETURN p_body;
END
$fn$;
"""

REVERSE = "DROP FUNCTION IF EXISTS api_idempotency_respond(boolean, bigint, integer, text, timestamptz);"


class Migration(migrations.Migration):
    dependencies = [("api", "0004_idempotency_complete")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
