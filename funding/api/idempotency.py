"""Contract 1.4: run a POST once per (company, Idempotency-Key); replay its stored response afterwards."""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from config.db import Finish, FinishDeclined, Gate, GateClosed, slot_template
from funding.api.errors import ApiError, exception_to_response
from funding.api.keys import key_current_run
from funding.api.models import IdempotencyStatus
from funding.api.services import (
    Claim,
    ClaimGate,
    KeyNotCurrent,
    NonceReplayed,
    PendingNonce,
    idempotency_claim,
    idempotency_claim_result,
    idempotency_complete,
    idempotency_release,
)
from funding.api.sql.idempotency import RESPOND_DECLINED

KEY_RE = re.compile(r"[\x20-\x7e]{1,64}")
REPLAYED_HEADER = "Idempotent-Replayed"


def _dumps(data) -> str:
    """Canonical JSON of a request body (for its hash): key order does not make two bodies different."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# The renderer DRF answers every API request with (funding.api.negotiation picks the first configured one; no
# view sets its own), taken from the same setting so that the two can never differ.
_JSON = api_settings.DEFAULT_RENDERER_CLASSES[0]()


def _rendered_once(response: Response) -> str:
    """Render the response's JSON now, exactly as DRF would later, keep the bytes as its content (DRF and Django
    then send them as they are) and return them as the text to store: encoded once, and a replay, which renders
    the stored JSON again, answers these very bytes. JSON escapes NUL; a lone surrogate fails here, before
    anything is stored or committed."""
    content = _JSON.render(response.data)
    _content_set(response, content)
    return content.decode()


def _content_set(response: Response, content: bytes) -> None:
    response.content = content
    if content:
        response["Content-Type"] = _JSON.media_type
    else:  # as DRF: no body, no content type
        del response["Content-Type"]


class StoredAnswer:
    """A request's answer stored by the operation's own statement (a config.db.Finish after the claim's gate and
    the operation): outside any transaction the claim, the operation and the stored answer are then one
    statement, one round trip and one implicit transaction, instead of BEGIN, the statement, and the answer
    stored with the COMMIT (idempotent_gated).

    `finisher(respond)` is what the operation hands its service (e.g. advance_request's `finish_with`): the
    service calls it with its instance as it will be, Slots standing where the database decides, and
    `respond(instance)` builds the Response from it. Its JSON is rendered here once, as a format() template
    (config.db.slot_template) that the statement fills in and stores: the body a replay answers is the very
    text sent. After the statement, `response()` is that Response. The Finish takes a plain success only;
    anything else raises FinishDeclined with nothing left behind."""

    def __init__(self) -> None:
        self._response: Response | None = None
        self._finish: Finish | None = None

    def finisher(self, respond: Callable[[Any], Response]) -> Callable[..., Finish]:
        def finish(instance: Any, *, plainly: str, decided: str, decided_params: list) -> Finish:
            response = respond(instance)
            template = slot_template(_JSON.render(response.data).decode())
            self._response, self._finish = response, Finish(
                sql=f"api_idempotency_respond({plainly}, gate.record_id, %s::int,"
                f" format(%s::text, VARIADIC {decided}), %s::timestamptz)",
                params=[response.status_code, template, *decided_params, timezone.now()],
                declined=RESPOND_DECLINED,
            )
            return self._finish

        return finish

    @property
    def sent(self) -> bool:
        """The statement was built (and then sent): from here an error is not a refusal before the database."""
        return self._finish is not None

    def response(self) -> Response:
        """The Response of the statement that stored it, its content the text stored."""
        if self._finish is None or self._finish.value is None:
            raise RuntimeError("the answer was not stored: its statement did not run")
        _content_set(self._response, self._finish.value.encode())
        return self._response


def _outside_transaction() -> bool:
    connection = transaction.get_connection()
    return connection.get_autocommit() and not connection.in_atomic_block


PENDING_NONCE_ATTR = "api_pending_nonce"


def replayed_error() -> ApiError:
    return ApiError(401, "replayed_request", "This nonce was already used with this key.")


def pending_nonce_take(request: Request) -> PendingNonce | None:
    """The verified nonce authentication left for the claim to record (once), if any."""
    http_request = request._request
    nonce = getattr(http_request, PENDING_NONCE_ATTR, None)
    setattr(http_request, PENDING_NONCE_ATTR, None)
    return nonce


def idempotency_key(request: Request) -> str:
    key = request._request.META.get("HTTP_IDEMPOTENCY_KEY")
    if key is None or not KEY_RE.fullmatch(key):
        raise ApiError(
            400,
            "validation_error",
            "The Idempotency-Key header is required.",
            {"Idempotency-Key": ["Send 1 to 64 printable ASCII characters."]},
        )
    return key


@dataclass(frozen=True)
class _Request:
    key: str
    method: str
    path: str
    request_hash: str


def _prepare(request: Request) -> _Request:
    key = idempotency_key(request)
    parsed_body = request.data  # parse errors surface here, before the key is taken
    method = request._request.method
    path = request._request.get_full_path()
    request_hash = hashlib.sha256(f"{method}\n{path}\n{_dumps(parsed_body)}".encode()).hexdigest()
    return _Request(key=key, method=method, path=path, request_hash=request_hash)


def _claim(request: Request, prepared: _Request) -> Claim:
    """Inside the caller's transaction: take the key, or raise the answer for a key already taken. A key row that
    changed since authentication read it is read again (funding.api.keys); the company's status is not taken
    from request.user then: the operation's own statement checks it."""
    return _claim_with(request, prepared, pending_nonce_take(request))


def _claim_with(request: Request, prepared: _Request, nonce: PendingNonce | None) -> Claim:
    def claim(current: PendingNonce | None) -> Claim:
        try:
            return idempotency_claim(
                company=request.user.company, key=prepared.key, method=prepared.method, path=prepared.path,
                request_hash=prepared.request_hash, nonce=current,
            )
        except NonceReplayed:
            raise replayed_error() from None

    return key_current_run(nonce, claim)[0]


def _existing_answer(claim: Claim, prepared: _Request) -> Response:
    record = claim.existing
    if record is not None and record.request_hash != prepared.request_hash:
        raise ApiError(
            409,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request (method, path or body).",
        )
    if record is None or record.status == IdempotencyStatus.IN_PROGRESS:
        raise ApiError(
            409,
            "request_in_progress",
            "A request with this Idempotency-Key is still being processed; retry shortly.",
        )
    return Response(json.loads(record.response_body), status=record.response_status, headers={REPLAYED_HEADER: "true"})


def _run(operation: Callable[[], Response]) -> Response:
    try:
        return operation()
    except Exception as exc:  # noqa: BLE001 - business rejections are stored and replayed too
        response = exception_to_response(exc)
        if response is None:
            raise
        return response


def idempotent(request: Request, operation: Callable[[], Response]) -> Response:
    """Claim the key, run `operation` and store its response in one transaction; or replay / refuse.

    One transaction (and one COMMIT) for all three: a request that fails or dies leaves nothing behind, so a
    retry with the same key simply runs again; a concurrent duplicate is told request_in_progress.
    """
    prepared = _prepare(request)
    with transaction.atomic():
        claim = _claim(request, prepared)
        if not claim.fresh:
            return _existing_answer(claim, prepared)
        return _complete(claim, _run(operation))


def idempotent_gated(
    request: Request, operation: Callable[[Gate | None, StoredAnswer | None], Response]
) -> Response:
    """idempotent() for an operation whose first statement takes the claim along (config.db.gated_fetchone): the
    claim runs first in that statement, and the operation's own part of it only if the claim is fresh. One round
    trip fewer per request; answers, records and transactions exactly as idempotent()'s.

    The operation gets the claim as its gate. A closed gate (the key taken, in progress, or the nonce replayed)
    raises GateClosed out of it with nothing of its statement run; the claim's row then decides the answer as
    in idempotent(). An operation that refuses the request before its statement (invalid input) never runs the
    gate: the claim then runs on its own, and the refusal is stored if the key is fresh.

    Outside any transaction (a request's usual case; not inside a test's) the operation is first asked with a
    StoredAnswer as well: claim, operation and stored answer in its one statement, which commits by itself. Any
    other outcome than a plain success (FinishDeclined: nothing of it remains), or a refusal before its
    statement, and the request takes the transactional way below, as if that attempt had never been.
    """
    prepared = _prepare(request)
    nonce = pending_nonce_take(request)

    def claim_gate() -> ClaimGate:
        return ClaimGate(company=request.user.company, key=prepared.key, method=prepared.method,
                         path=prepared.path, request_hash=prepared.request_hash, nonce=nonce)

    if _outside_transaction():
        stored = StoredAnswer()
        try:
            return operation(claim_gate(), stored)
        except FinishDeclined:
            pass
        except Exception:
            if stored.sent:
                raise  # an error of the statement (or after it): answered as without the attempt, a 5xx
    with transaction.atomic():
        gate = claim_gate()
        try:
            response = _run(lambda: operation(gate, None))
        except GateClosed:
            response = None
        if gate.row is None and response is not None and response.status_code < 400:
            raise RuntimeError("a gated operation succeeded without running its gate")
        try:
            claim = idempotency_claim_result(gate)
        except NonceReplayed:
            raise replayed_error() from None
        except KeyNotCurrent:
            # The key's row changed since authentication read it: nothing was claimed and nothing of the
            # operation's statement ran. The ungated way reads the key again (or refuses the request).
            claim = _claim_with(request, prepared, nonce)
        if not claim.fresh:
            return _existing_answer(claim, prepared)
        return _complete(claim, response if response is not None else _run(lambda: operation(None, None)))


def _complete(claim: Claim, response: Response) -> Response:
    """Store the operation's answer under the claimed key; the last statement of idempotent()'s transaction."""
    if response.status_code >= 500:
        raise RuntimeError(f"operation answered {response.status_code}")
    idempotency_complete(record_id=claim.record_id, status=response.status_code, body_json=_rendered_once(response))
    return response


def idempotent_outside_transaction(request: Request, operation: Callable[[], Response]) -> Response:
    """idempotent() for an operation that waits on the network (the webhook test): no transaction stays open.

    The claim commits first, so a concurrent duplicate is told request_in_progress while the operation runs;
    the response is stored afterwards. An answer of 500 or more (the receiver could not be reached) is not
    stored and the claim is released: a retry with the same key runs again. A process that dies in between
    leaves the claim, which a retry takes over after API_IDEMPOTENCY_LEASE_SECONDS.
    """
    prepared = _prepare(request)
    with transaction.atomic():
        claim = _claim(request, prepared)
    if not claim.fresh:
        return _existing_answer(claim, prepared)
    try:
        response = _run(operation)
    except BaseException:
        idempotency_release(record_id=claim.record_id)
        raise
    if response.status_code >= 500:
        idempotency_release(record_id=claim.record_id)
        return response
    with transaction.atomic():
        idempotency_complete(record_id=claim.record_id, status=response.status_code, body_json=_rendered_once(response))
    return response
