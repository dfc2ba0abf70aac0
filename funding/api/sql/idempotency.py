"""api_idempotency_complete(): store the response of a request under its idempotency key (contract 1.4).

A function, not a plain UPDATE, because it is sent together with the request's COMMIT in one message
(funding.api.idempotency, config.db.commit_with): a record that is not in progress must stop that COMMIT, so
the check raises inside the database, before the COMMIT is reached, instead of being read from a row count
after it. The migration that installs this text carries its own copy (funding/api/migrations/0004).
"""

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
