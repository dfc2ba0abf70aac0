"""Thin views: validate input, call a service or selector, render. Contract sections 1.1 to 1.6."""

import base64
import binascii
import json
import re
from datetime import date, datetime

from django.db.models import Q
from django.http import JsonResponse
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from funding.api import selectors, selectors_statements
from funding.api import serializers as s
from funding.api.authentication import SignatureAuthentication
from funding.api.errors import ApiError, error_body, exception_to_response
from funding.api.idempotency import (
    idempotent,
    idempotent_gated,
    idempotent_outside_transaction,
    pending_nonce_take,
    replayed_error,
)
from funding.api.keys import nonce_record
from funding.api.models import WebhookEndpoint
from funding.api.parsers import SafeJSONParser
from funding.api.services import webhook_endpoint_set
from funding.api.throttling import ApiKeyRateThrottle
from funding.api.webhooks import WebhookNotRegistered, webhook_ping
from funding.errors import NotFound
from funding.exports import csv_download
from funding.models import Advance, BusinessDay, WebhookEvent
from funding.representations import advance_representation
from funding.services.advances import PayoutInput, advance_cancel, advance_request

ADVANCE_ID_RE = re.compile(r"adv_[0-9A-Z]{26}")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DEFAULT_PAGE_SIZE = 50

IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=True,
    description="1 to 64 printable ASCII characters; retries with the same key and body replay the first "
    "response (header `Idempotent-Replayed: true`).",
)


class ApiView(APIView):
    authentication_classes = [SignatureAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes = [ApiKeyRateThrottle]
    parser_classes = [SafeJSONParser]
    # True on views whose POST goes through idempotent(): the nonce is recorded by the claim's statement.
    nonce_with_idempotency_claim = False

    def finalize_response(self, request, response, *args, **kwargs):
        # A nonce left for a claim that never ran (the request was refused before it: no Idempotency-Key, a
        # body that does not parse, throttled...) is recorded now; if it was a replay, that refusal wins:
        # a replayed request learns nothing but replayed_request, whatever else is wrong with it.
        # A key that changed since authentication read it (revoked...) answers authentication_failed instead.
        if isinstance(request, Request) and (nonce := pending_nonce_take(request)) is not None:
            try:
                if not nonce_record(nonce)[0]:
                    response = exception_to_response(replayed_error())
            except ApiError as exc:
                response = exception_to_response(exc)
        return super().finalize_response(request, response, *args, **kwargs)

    @property
    def company(self):
        return self.request.user.company

    def query(self, serializer_class) -> dict:
        serializer = serializer_class(data=self.request.query_params.dict())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _advance_body(advance: Advance) -> dict:
    return advance_representation(advance, selectors.advance_payouts(advance))


@csrf_exempt  # an unknown path answers 404 in the contract's shape for every method, not CSRF's 403 page
def api_not_found(request, *args, **kwargs):
    return JsonResponse(error_body("not_found", "No such resource."), status=404)


class CreditLineView(ApiView):
    @extend_schema(
        operation_id="credit_line_get",
        summary="The caller's credit line as of now",
        responses={200: s.CreditLineOut},
    )
    def get(self, request):
        return Response(selectors.credit_line_view(company=self.company))


def _encode_cursor(advance: Advance) -> str:
    raw = json.dumps([advance.created_at.isoformat(), advance.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, pk = json.loads(raw)
        created_at = parse_datetime(created)
        if created_at is None or not isinstance(pk, int) or isinstance(pk, bool):
            raise ValueError
        return created_at, pk
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError(
            400,
            "validation_error",
            "The request is not valid.",
            {"cursor": ["Not a valid cursor; use the `next` URL as given."]},
        ) from exc


class AdvanceListCreateView(ApiView):
    nonce_with_idempotency_claim = True
    @extend_schema(
        operation_id="advances_list",
        summary="The caller's advances, newest first (cursor-paginated)",
        parameters=[s.AdvanceListQuerySerializer],
        responses={200: s.AdvancePageOut},
    )
    def get(self, request):
        filters = self.query(s.AdvanceListQuerySerializer)
        page_size = filters.pop("page_size", DEFAULT_PAGE_SIZE)
        cursor = filters.pop("cursor", None)
        qs = selectors.advance_list(company=self.company, filters=filters).order_by("-created_at", "-id")
        if cursor:
            created_at, pk = _decode_cursor(cursor)
            qs = qs.filter(Q(created_at__lt=created_at) | Q(created_at=created_at, id__lt=pk))
        page = list(qs[: page_size + 1])
        next_url = None
        if len(page) > page_size:
            page = page[:page_size]
            params = request.query_params.copy()
            params["cursor"] = _encode_cursor(page[-1])
            next_url = request.build_absolute_uri(f"{request.path}?{params.urlencode()}")
        return Response({"results": [_advance_body(a) for a in page], "next": next_url})

    @extend_schema(
        operation_id="advances_create",
        summary="Request an advance (D0 payouts funded by the credit line)",
        parameters=[IDEMPOTENCY_HEADER],
        request=s.AdvanceCreateSerializer,
        responses={
            201: s.AdvanceOut,
            409: OpenApiResponse(
                s.ErrorSerializer,
                description=("duplicate_external_id, idempotency_key_reused or request_in_progress"),
            ),
            422: OpenApiResponse(
                s.ErrorSerializer,
                description=(
                    "insufficient_limit (details: available, requested, daily_remaining where the daily cap "
                    "decided), credit_line_frozen, credit_line_inactive, company_suspended, business_day_closed, "
                    "calendar_unavailable, outside_channel_hours (details: payouts.N.amount)"
                ),
            ),
        },
    )
    def post(self, request):
        def respond(advance: Advance) -> Response:
            # Built from what advance_request creates: the same body GET answers, without re-reading.
            return Response(advance_representation(advance, advance.created_payouts, fresh=True), status=201)

        def operation(claim_gate, stored):
            data = s.advance_create_fast(request.data)
            if data is None:  # anything not plainly valid: the serializer decides and explains
                serializer = s.AdvanceCreateSerializer(data=request.data)
                serializer.is_valid(raise_exception=True)
                data = serializer.validated_data
            advance = advance_request(
                company=self.company,
                external_id=data["external_id"],
                amount=data["amount"],
                currency=data["currency"],
                use_own_funds=data.get("use_own_funds", True),
                payouts=[PayoutInput(**p) for p in data["payouts"]],
                gate=claim_gate,  # the idempotency claim rides in advance_reserve()'s round trip
                # and, outside a transaction, the answer is stored in it too
                finish_with=stored.finisher(respond) if stored is not None else None,
            )
            return stored.response() if stored is not None else respond(advance)

        return idempotent_gated(request, operation)


def _advance_or_404(company, advance_id: str) -> Advance:
    advance = None
    if ADVANCE_ID_RE.fullmatch(advance_id):
        advance = selectors.advance_get(company=company, public_id=advance_id)
    if advance is None:
        raise NotFound("No advance with this id.")
    return advance


class AdvanceDetailView(ApiView):
    @extend_schema(operation_id="advances_get", summary="One advance", responses={200: s.AdvanceOut})
    def get(self, request, advance_id: str):
        return Response(_advance_body(_advance_or_404(self.company, advance_id)))


class AdvanceCancelView(ApiView):
    nonce_with_idempotency_claim = True
    @extend_schema(
        operation_id="advances_cancel",
        summary="Cancel an advance before any payout was handed to a channel",
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={
            200: s.AdvanceOut,
            409: OpenApiResponse(
                s.ErrorSerializer,
                description=("invalid_state, idempotency_key_reused or request_in_progress"),
            ),
        },
    )
    def post(self, request, advance_id: str):
        def operation():
            _advance_or_404(self.company, advance_id)
            advance_cancel(company=self.company, public_id=advance_id, actor_label=request.user.label)
            return Response(_advance_body(selectors.advance_get(company=self.company, public_id=advance_id)))

        return idempotent(request, operation)


class RepaymentListView(ApiView):
    @extend_schema(
        operation_id="repayments_list",
        summary="Repayments applied to the caller's advances",
        parameters=[s.RepaymentListQuerySerializer],
        responses={200: s.RepaymentListOut},
    )
    def get(self, request):
        filters = self.query(s.RepaymentListQuerySerializer)
        return Response(
            {
                "results": selectors_statements.repayment_list(
                    company=self.company, business_date=filters.get("business_date")
                )
            }
        )


class StatementView(ApiView):
    @extend_schema(
        operation_id="statements_get",
        summary="Daily statement (JSON, or CSV with ?format=csv)",
        parameters=[
            OpenApiParameter("business_date", OpenApiTypes.DATE, OpenApiParameter.PATH),
            s.StatementQuerySerializer,
        ],
        responses={
            200: OpenApiResponse(
                s.StatementOut,
                description="JSON; with format=csv a text/csv body with "
                "the same lines and one `summary` row per total.",
            )
        },
    )
    def get(self, request, business_date: str):
        fmt = self.query(s.StatementQuerySerializer)["format"]
        try:
            if not DATE_RE.fullmatch(business_date):
                raise ValueError
            day = date.fromisoformat(business_date)
        except ValueError as exc:
            raise ApiError(
                400,
                "validation_error",
                "The request is not valid.",
                {"business_date": ["Use a date as YYYY-MM-DD."]},
            ) from exc
        current = BusinessDay.objects.first()
        if current is None or day > current.current:
            raise NotFound("There is no statement for this business date yet.")
        statement = selectors_statements.statement_build(company=self.company, business_date=day)
        if fmt == "csv":
            return csv_download(
                selectors_statements.statement_csv(statement),
                filename=f"statement-{self.company.code}-{day.isoformat()}.csv",
            )
        return Response(statement)


class WebhookEndpointView(ApiView):
    @extend_schema(
        operation_id="webhook_endpoint_get",
        summary="The registered webhook URL",
        responses={200: s.WebhookEndpointOut},
    )
    def get(self, request):
        endpoint = WebhookEndpoint.objects.filter(company=self.company).first()
        return Response({"url": endpoint.url if endpoint and endpoint.url else None})

    @extend_schema(
        operation_id="webhook_endpoint_put",
        summary="Register or replace the webhook URL",
        request=s.WebhookEndpointInputSerializer,
        responses={200: s.WebhookEndpointSetOut},
    )
    def put(self, request):
        serializer = s.WebhookEndpointInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint, secret = webhook_endpoint_set(
            company=self.company, url=serializer.validated_data["url"], actor_label=request.user.label
        )
        return Response({"url": endpoint.url, "secret": secret})


class WebhookEndpointTestView(ApiView):
    nonce_with_idempotency_claim = True

    @extend_schema(
        operation_id="webhook_endpoint_test",
        summary="Send a signed ping event to the registered URL now",
        description=(
            "Sends `{\"id\": \"evt_...\", \"type\": \"ping\", \"created_at\": ..., \"data\": {\"company\": ...}}` "
            "with the same headers, signature and address checks as every webhook, waits for the answer (at most "
            "10 s) and reports the receiver's status code, whatever it is, and the time it took. No body, or `{}`. "
            "The ping is not an event: `GET /api/v1/events` does not list it."
        ),
        parameters=[IDEMPOTENCY_HEADER],
        request=None,
        responses={
            200: s.WebhookTestOut,
            409: OpenApiResponse(s.ErrorSerializer, description="idempotency_key_reused or request_in_progress"),
            422: OpenApiResponse(
                s.ErrorSerializer,
                description="webhook_url_not_registered; webhook_url_refused (the URL now resolves to a "
                "non-public address; details.url)",
            ),
            502: OpenApiResponse(
                s.ErrorSerializer,
                description="webhook_receiver_unreachable (connection, TLS or timeout; details: error, "
                "duration_ms). Not stored: a retry with the same Idempotency-Key tries again.",
            ),
        },
    )
    def post(self, request):
        def operation():
            if request.data not in ({}, None):
                raise ApiError(400, "validation_error", "The request is not valid.",
                               {"body": ["Send no body, or {}."]})
            try:
                ping = webhook_ping(company=self.company)
            except WebhookNotRegistered:
                raise ApiError(
                    422, "webhook_url_not_registered",
                    "No webhook URL is registered; register one with PUT /api/v1/webhook-endpoint.",
                ) from None
            outcome = ping.outcome
            if outcome.refused:
                raise ApiError(422, "webhook_url_refused", "The registered URL may not be called now.",
                               {"url": [outcome.error]})
            if outcome.status_code is None:
                raise ApiError(
                    502, "webhook_receiver_unreachable", "The webhook receiver could not be reached.",
                    {"error": outcome.error, "duration_ms": outcome.latency_ms},
                )
            return Response({"url": outcome.url, "event_id": ping.event_id, "status_code": outcome.status_code,
                             "duration_ms": outcome.latency_ms})

        return idempotent_outside_transaction(request, operation)


def _event_next_url(request, last: WebhookEvent) -> str:
    params = request.query_params.copy()
    params["after"] = last.public_id
    return request.build_absolute_uri(f"{request.path}?{params.urlencode()}")


class EventListView(ApiView):
    @extend_schema(
        operation_id="events_list",
        summary="The caller's events in the order they were written (catching up on webhooks)",
        description=(
            "Each item is exactly the body of its webhook. Oldest first; `after=<event id>` continues after that "
            "event, `type` keeps one type, `page_size` 1-200 (default 50). Follow `next`; when it is null there "
            "is nothing more yet: poll again later with `after=` the last id you processed. Every event appears "
            "once in this order, so nothing is skipped; an event is listed once the transactions written "
            "before it have finished (usually milliseconds). Events are kept at least 30 days; an `after` id "
            "no longer kept (or unknown) is a validation_error. As with webhooks, compare `data.version`."
        ),
        parameters=[s.EventListQuerySerializer],
        responses={200: s.EventPageOut},
    )
    def get(self, request):
        query = self.query(s.EventListQuerySerializer)
        page_size = query.get("page_size", DEFAULT_PAGE_SIZE)
        after = None
        if "after" in query:
            after = selectors.event_position(company=self.company, public_id=query["after"])
            if after is None:
                raise ApiError(400, "validation_error", "The request is not valid.",
                               {"after": ["No such event of yours (events are kept at least 30 days)."]})
        page = selectors.event_list(company=self.company, after=after, type=query.get("type"), limit=page_size + 1)
        next_url = None
        if len(page) > page_size:
            page = page[:page_size]
            next_url = _event_next_url(request, page[-1])
        return Response({"results": [event.payload for event in page], "next": next_url})
