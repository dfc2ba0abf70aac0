"""api_idempotency_complete() (issue 15): the response stored by a function that raises when the record is not in
progress, so that it can travel with the request's COMMIT in one message and stop it (one round trip fewer per
POST). The SQL is copied here verbatim; funding/api/sql/idempotency.py documents it.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION api_idempotency_complete(
    p_record_id bigint, p_status integer, p_body text, p_completed_at timestamptz
) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
    UPDATE api_idempotencyrecord
       SET status = 'done', response_status = p_status, response_body = p_body, completed_at = p_completed_at
     WHERE id = p_record_id AND status = 'in_progress';
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'AI001',
            MESSAGE = format('idempotency record %s was not in progress', p_record_id);
    END IF;
END
$fn$;
"""

REVERSE = "DROP FUNCTION IF EXISTS api_idempotency_complete(bigint, integer, text, timestamptz);"


class Migration(migrations.Migration):
    dependencies = [("api", "0003_fewer_indexes")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
