"""The idempotency record's SQL (contract 1.4): api_idempotency_complete() and api_idempotency_respond().

api_idempotency_complete() stores the response of a request under its idempotency key. A function, not a plain
UPDATE, because it is sent together with the request's COMMIT in one message (funding.api.idempotency,
config.db.commit_with): a record that is not in progress must stop that COMMIT, so the check raises inside the
database, before the COMMIT is reached, instead of being read from a row count after it.

api_idempotency_respond() is the last step of a request that is one statement, outside any transaction (a
config.db.Finish; funding.api.idempotency.StoredAnswer): with `p_plain` (the operation succeeded plainly) it
stores the answer and returns its text; otherwise it raises AI002, which undoes the whole statement (the claim,
the nonce, the operation) so that the request can take its transactional way.

The migrations that install this text carry their own copies (funding/api/migrations/0004, 0005).
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

REVERSE = """
DROP FUNCTION IF EXISTS api_idempotency_respond(boolean, bigint, integer, text, timestamptz);
DROP FUNCTION IF EXISTS api_idempotency_complete(bigint, integer, text, timestamptz);
"""
# The SQLSTATE api_idempotency_respond() declines with (config.db.Finish.declined).
RESPOND_DECLINED = "AI002"
