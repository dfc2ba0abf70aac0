"""Advance requests: validate, use the company's own funds first, hold the credit line last, commit once."""

from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models.base import ModelState
from django.utils import timezone

from config.db import (
    Finish,
    Gate,
    GateClosed,
    Slot,
    gated_fetchone,
    numeric_array,
    prepared_cursor,
    text_array,
)
from config.fsm import transition_sources
from config.ops.metrics import count_advance_requests
from funding.errors import (
    BusinessDayClosed,
    CompanySuspended,
    CreditLineFrozen,
    CreditLineInactive,
    DuplicateExternalId,
    InsufficientLimit,
    InvalidState,
    NotFound,
    OutsideChannelHours,
    ValidationFailed,
)
from funding.models import (
    ADVANCE_CLEARABLE_STATES,
    ADVANCE_COLLECTABLE_STATES,
    ADVANCE_REPAYABLE_STATES,
    FINAL_PAYOUT_STATES,
    Advance,
    AdvanceStatus,
    Company,
    Payout,
    PayoutStatus,
    new_advance_id,
    new_payout_id,
)
from funding.representations import amount_str
from funding.services.audit import audit_event_build, audit_record, audit_records_insert
from funding.services.calendar import calendar_unavailable
from funding.services.events import advance_events_insert, events_schedule_delivery
from funding.services.line_counters import line_release
from funding.services.postings import advances_post_fees
from funding.services.thresholds import credit_line_thresholds_emit
from funding.signals import advance_reserved
from ledger.models import Account, AccountKind, JournalTransaction
from ledger.money import MAX_AMOUNT, money
from ledger.services import account_release_hold

MAX_PAYOUTS = 1000


@dataclass(frozen=True)
class PayoutInput:
    external_id: str
    beneficiary_name: str
    account_no: str
    bank_code: str
    amount: Decimal


# The values advance_reserve() decides, as the text the API renders them in (amount_str: 2 fraction digits; ISO
# dates), in the order of their Slot numbers: the advance's own funds, advanced amount, business and due dates,
# then each payout's own funds and advanced amount. Parameters: the advance's amount, the payouts' amounts.
_DECIDED_TEXT = (
    "ARRAY[round(operation.own_funds, 2)::text, round(%s::numeric - operation.own_funds, 2)::text,"
    " to_char(operation.business_date, 'YYYY-MM-DD'), to_char(operation.due_date, 'YYYY-MM-DD')]"
    " || ARRAY(SELECT v.text FROM unnest(operation.own_parts, %s::numeric[]) WITH ORDINALITY AS p(own, amount, n)"
    " CROSS JOIN LATERAL (VALUES (1, round(p.own, 2)::text), (2, round(p.amount - p.own, 2)::text)) AS v(k, text)"
    " ORDER BY p.n, v.k)"
)


def _decided_slots(payout_count: int) -> tuple[dict, list[dict]]:
    """The advance's and each payout's columns advance_reserve() decides, as Slots numbered in _DECIDED_TEXT's
    order; the ids and the fee rate, which no answer renders, stay None until the statement gives them."""
    advance = {"id": None, "credit_line_id": None, "own_funds_amount": Slot(1), "advanced_amount": Slot(2),
               "daily_fee_rate": None, "business_date": Slot(3), "due_date": Slot(4)}
    payouts = [{"id": None, "own_funds_amount": Slot(5 + 2 * i), "advanced_amount": Slot(6 + 2 * i)}
               for i in range(payout_count)]
    return advance, payouts


# A plain success, the one outcome a Finish may take: reserved, and no utilisation threshold reached (whose
# events are written by Python in the reservation's transaction).
_RESERVED_PLAINLY = "(operation.code = 'ok' AND coalesce(cardinality(operation.thresholds), 0) = 0)"


class AdvanceFinisher(Protocol):
    """A caller's Finish for the statement that reserves the advance (config.db.Finish): given the advance as it
    will be (its payouts in `created_payouts`), with Slots where advance_reserve() decides (own funds, advanced
    amounts, dates), `plainly` (SQL: the reservation succeeded plainly) and `decided` (SQL text[] of the
    decided values in slot order, with `decided_params`), the Finish to run last."""

    def __call__(self, advance: Advance, *, plainly: str, decided: str, decided_params: list) -> Finish: ...


@count_advance_requests
def advance_request(
    *,
    company: Company,
    external_id: str,
    amount: Decimal,
    payouts: list[PayoutInput],
    use_own_funds: bool = True,
    currency: str = "CNY",
    gate: Gate | None = None,
    finish_with: AdvanceFinisher | None = None,
) -> Advance:
    """Create an advance in `reserved`, its payouts in `pending`, and hold the limit. All or nothing.

    Raises a funding.errors.EngineError on rejection; a rejection leaves every balance and counter as it was.
    `gate`: a statement of the caller's that runs first in the same round trip (config.db.gated_fetchone; the
    API's idempotency claim); when it stays closed, nothing of this call runs and config.db.GateClosed is raised.
    Input refused before the database is asked never runs it.
    `finish_with` (with a gate, outside any transaction): the caller's last step in the same statement, which
    then is the whole transaction (config.db.Finish; the API stores its answer there). It takes only a plain
    success: anything else (the gate closed, a refusal, a threshold reached) undoes the statement and raises
    config.db.FinishDeclined, having changed nothing; the caller then calls again without it.
    """
    if currency != settings.ENGINE_CURRENCY:
        raise ValidationFailed(details={"currency": [f"Only {settings.ENGINE_CURRENCY} is supported."]})
    _validate_input(external_id, amount, payouts)
    amount = money(amount)
    payout_amounts = [money(p.amount) for p in payouts]
    public_id = new_advance_id()
    payout_public_ids = [new_payout_id() for _ in payouts]
    created_at = timezone.now()

    def built(decided: dict, payouts_decided: list[dict]) -> Advance:
        """The advance and its payouts as loaded from the rows about to be written; `decided`: what
        advance_reserve() decides."""
        advance = _as_loaded(Advance, {
            "public_id": public_id, "company_id": company.pk, "external_id": external_id,
            "status": AdvanceStatus.RESERVED, "currency": currency, "amount": amount, "created_at": created_at,
            "updated_at": created_at, **decided,
        })
        Advance.company.field.set_cached_value(advance, company)
        advance.created_payouts = []  # the response is built from these (no attempts exist yet), not read back
        for index, (p, payout_amount) in enumerate(zip(payouts, payout_amounts, strict=True)):
            payout = _as_loaded(Payout, {
                "public_id": payout_public_ids[index], "advance_id": decided["id"], "sequence": index + 1,
                "external_id": p.external_id, "beneficiary_name": p.beneficiary_name, "account_no": p.account_no,
                "bank_code": p.bank_code, "amount": payout_amount, "created_at": created_at,
                "updated_at": created_at, **payouts_decided[index],
            })
            Payout.advance.field.set_cached_value(payout, advance)
            advance.created_payouts.append(payout)
        return advance

    finish = advance = None
    if finish_with is not None:
        advance = built(*_decided_slots(len(payouts)))  # rendered before the statement decides
        finish = finish_with(advance, plainly=_RESERVED_PLAINLY, decided=_DECIDED_TEXT,
                             decided_params=[amount, numeric_array(payout_amounts)])

    # One round trip: the day's lock (shared), the business date, the company's and the line's state, the due
    # date, the channels' capacity, own funds held first, the advance and its payouts inserted, the line held
    # last (funding/sql/advance_reserve.py). A refusal comes back as a code with every hold of the call undone.
    # savepoint=False: inside the API's transaction this adds no statement; alone, it makes one transaction of
    # the advance and the threshold events it may cause. With a Finish the statement is the transaction (and
    # takes no threshold): BEGIN and COMMIT would be two round trips more.
    with transaction.atomic(savepoint=False) if finish is None else nullcontext():
        with prepared_cursor() as cursor:
            reserved = gated_fetchone(
                cursor,
                gate,
                "SELECT * FROM advance_reserve(%s::bigint, %s::text, %s::text, %s::text, %s::text, %s::text,"
                " %s::numeric, %s::boolean, %s::timestamptz, %s::text[], %s::text[], %s::text[], %s::text[],"
                " %s::text[], %s::numeric[])",
                [
                    company.pk, company.code, AccountKind.SETTLEMENT, currency, public_id, external_id, amount,
                    use_own_funds, created_at, text_array(payout_public_ids),
                    text_array(p.external_id for p in payouts), text_array(p.beneficiary_name for p in payouts),
                    text_array(p.account_no for p in payouts), text_array(p.bank_code for p in payouts),
                    numeric_array(payout_amounts),
                ],
                finish,
            )
        if reserved is not None:
            (code, advance_id, line_id, business_date, due_date, own, own_parts, daily_fee_rate, available,
             requested, first_missing, daily_remaining, unpayable, thresholds, payout_pks) = reserved
            if thresholds:  # rare: the hold made utilisation reach a threshold first today (already marked)
                credit_line_thresholds_emit(line_id=line_id, thresholds=thresholds)
    if reserved is None:  # the caller's gate stayed closed and nothing ran; raised out here, since an exception
        raise GateClosed()  # leaving the atomic block above would mark the caller's transaction for rollback
    if code != "ok":
        _raise_refusal(code, available=available, requested=requested, daily_remaining=daily_remaining,
                       business_date=business_date, first_missing=first_missing, unpayable=unpayable,
                       payouts=payouts)
    own = money(own)
    decided = {"id": advance_id, "credit_line_id": line_id, "own_funds_amount": own, "advanced_amount": amount - own,
               "daily_fee_rate": daily_fee_rate, "business_date": business_date, "due_date": due_date}
    # Own funds paid the first payouts in order (the split advance_reserve() wrote); the line funds the rest.
    payouts_decided = [
        {"id": payout_pk, "own_funds_amount": money(own_part), "advanced_amount": payout_amount - money(own_part)}
        for payout_pk, own_part, payout_amount in zip(payout_pks, own_parts, payout_amounts, strict=True)
    ]
    if advance is None:
        advance = built(decided, payouts_decided)
    else:  # the Slots give way to what the database decided
        advance.__dict__.update(decided)
        for payout, values in zip(advance.created_payouts, payouts_decided, strict=True):
            payout.__dict__.update(values, advance_id=advance_id)
    advance_reserved.send(sender=Advance, advance=advance)
    return advance


_COLUMN_DEFAULTS: dict[type, list] = {}  # model -> [(attname, its field's get_default)], in column order


def _as_loaded(model, values: dict):
    """An instance of a row just written, as a queryset would load it; columns not given take their model
    defaults, as the INSERT did.

    Built the way Django's deferred loading fills a field: straight into the instance's __dict__, without
    Model.__init__'s descriptor call per field and its pre_init / post_init signals (none is connected to these
    models: tests/funding/services/test_advances.py checks both, and that the instances equal the rows
    read back). The request's hot path builds an advance and its payouts this way: ~50 us less per request.
    """
    columns = _COLUMN_DEFAULTS.get(model)
    if columns is None:
        columns = _COLUMN_DEFAULTS[model] = [(f.attname, f.get_default) for f in model._meta.concrete_fields]
    instance = model.__new__(model)
    instance.__dict__.update(
        (name, values[name] if name in values else default()) for name, default in columns
    )
    state = instance._state = ModelState()
    state.adding = False
    state.db = DEFAULT_DB_ALIAS
    return instance


def _raise_refusal(code: str, *, available, requested: Decimal, daily_remaining, business_date, first_missing,
                   unpayable, payouts: list[PayoutInput]) -> None:
    if code == "insufficient_limit":
        details = {"available": amount_str(money(available)), "requested": amount_str(money(requested))}
        if daily_remaining is not None:  # the daily cap decided (contract 1.7)
            details["daily_remaining"] = amount_str(money(daily_remaining))
        raise InsufficientLimit(details=details)
    if code == "calendar_unavailable":
        raise calendar_unavailable(day=business_date, first_missing=first_missing)
    if code == "outside_channel_hours":
        raise OutsideChannelHours(details={
            f"payouts.{index}.amount": [
                f"No channel can pay {amount_str(money(payouts[index].amount))} to {payouts[index].bank_code} "
                f"on the business date {business_date.isoformat()}: above every open channel's limit or after "
                "their cut-off."
            ]
            for index in unpayable
        })
    refusals = {
        "company_suspended": CompanySuspended,
        "business_day_closed": BusinessDayClosed,
        "credit_line_inactive": CreditLineInactive,
        "credit_line_frozen": CreditLineFrozen,
        "duplicate_external_id": DuplicateExternalId,
    }
    raise refusals[code]()


def _amount_errors(value: Decimal) -> list[str]:
    if not isinstance(value, Decimal) or not value.is_finite():
        return ["Not an amount."]
    if value <= 0:
        return ["Must be greater than zero."]
    if value > MAX_AMOUNT:
        return [f"Must not exceed {MAX_AMOUNT}."]
    if money(value) != value:
        return ["At most 2 fraction digits."]
    return []


# Column lengths: longer text would reach PostgreSQL as a DataError.
TEXT_LIMITS = {"external_id": 64, "beneficiary_name": 100, "account_no": 32, "bank_code": 16}


def _text_errors(value: object, limit: int) -> list[str]:
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        return ["Must be non-empty text."]
    return [f"At most {limit} characters."] if len(value) > limit else []


def _validate_input(external_id: str, amount: Decimal, payouts: list[PayoutInput]) -> None:
    """The service refuses bad input itself, so that no caller can reach a column limit or a CHECK (a 5xx)."""
    errors: dict[str, list[str]] = {}
    if problems := _text_errors(external_id, TEXT_LIMITS["external_id"]):
        errors["external_id"] = problems
    for index, payout in enumerate(payouts):
        for field, limit in TEXT_LIMITS.items():
            if problems := _text_errors(getattr(payout, field), limit):
                errors[f"payouts.{index}.{field}"] = problems
    if problems := _amount_errors(amount):
        errors["amount"] = problems
    if not 1 <= len(payouts) <= MAX_PAYOUTS:
        errors["payouts"] = [f"Between 1 and {MAX_PAYOUTS} payouts."]
    for index, payout in enumerate(payouts):
        if problems := _amount_errors(payout.amount):
            errors[f"payouts.{index}.amount"] = problems
    seen: set[str] = set()
    for index, payout in enumerate(payouts):
        if payout.external_id in seen:
            errors[f"payouts.{index}.external_id"] = ["Payout external_ids must be unique in the advance."]
        seen.add(payout.external_id)
    if not errors and sum((p.amount for p in payouts), Decimal(0)) != amount:
        errors["payouts"] = ["The payout amounts must add up exactly to amount."]
    if errors:
        raise ValidationFailed(details=errors)


def advance_cancel(*, company: Company, public_id: str, actor_label: str) -> Advance:
    """Cancel an advance none of whose payouts has been handed to a channel; release its holds."""
    with transaction.atomic():
        advance = Advance.objects.select_for_update().filter(company=company, public_id=public_id).first()
        if advance is None:
            raise NotFound()
        if advance.status != AdvanceStatus.RESERVED:
            raise InvalidState(f"The advance is {advance.status}; only a reserved advance can be cancelled.")
        payouts = list(Payout.objects.select_for_update().filter(advance=advance).order_by("sequence"))
        if any(p.status != PayoutStatus.PENDING or p.attempt_count for p in payouts):
            raise InvalidState("A payout of this advance has already been handed to a channel.")
        for payout in payouts:
            payout.cancel()
            payout.version += 1
        Payout.objects.bulk_update(payouts, ["status", "version"])
        advance.cancel()
        advance.version += 1
        advance.save(update_fields=["status", "version", "updated_at"])
        if advance.own_funds_amount:
            settlement = Account.objects.get(kind=AccountKind.SETTLEMENT, owner=company.code,
                                             currency=advance.currency)
            account_release_hold(account=settlement, amount=advance.own_funds_amount)
        # Cancelled advances do not count against the daily cap (contract 1.7).
        line_release(line_id=advance.credit_line_id, amount=advance.advanced_amount,
                     advanced_on=advance.business_date)
        audit_record(action="advance.cancelled", obj=advance, actor_label=actor_label, company=company,
                     before={"status": "reserved"}, after={"status": "cancelled"})
    return advance


def advance_fee_of_payouts(*, payouts: list[Payout], daily_fee_rate: Decimal, business_date, due_date) -> Decimal:
    """The fee of the succeeded payouts' line parts, each for the calendar days from its value date (the
    business date its funds left the bank) to due_date (contract 1.7), rounded half-up to 0.01 once.

    A payout without a value date left on the advance's business date (rows older than value dates); one that
    left on or after the due date is charged no day.
    """
    total = sum(
        (p.advanced_amount * max((due_date - (p.value_date or business_date)).days, 0) for p in payouts),
        Decimal("0"),
    )
    return money(total * daily_fee_rate)


def advance_finish_disbursement(*, advance_id: int, business_date) -> Advance | None:
    """Take the known payout outcomes into one advance (advances_finish_disbursement, the one code path).

    Returns the advance as updated, or None (and changes nothing) when nothing new is known. Safe to call again.
    """
    finished = advances_finish_disbursement(advance_ids=[advance_id], business_date=business_date)
    return finished[0] if finished else None


# The FSM's moves out of `disbursing` once every payout is final, by outcome (their source states are named in
# the set-based UPDATE below, read from the transitions themselves).
_FINISH_MOVES = {
    AdvanceStatus.DISBURSED: Advance.mark_disbursed,
    AdvanceStatus.PARTIALLY_DISBURSED: Advance.mark_partially_disbursed,
    AdvanceStatus.FAILED: Advance.mark_failed,
}


def advances_finish_disbursement(*, advance_ids: Iterable[int], business_date: date) -> list[Advance]:
    """Take the known payout outcomes into each advance: its disbursed amounts and fee (posted as it grows),
    and once every payout is final the FSM's move out of `disbursing`. Set-based: a batch of payouts of many
    small advances finishes them with a constant number of statements, not a dozen per advance.

    Contract 1.7, "due for what actually left the bank": while one payout is still `unknown` or in
    `manual_review`, what the succeeded ones paid (and its fee) is already owed, due on the due date, collected
    and made overdue like any other advance; a payout that succeeds later adds its part (due at the next
    collection: penalty accrues only from the close that finds it unpaid). The line's counters follow the payouts
    themselves (a success draws its hold, a final failure releases it), not this step.

    Statements: the fee receivables of due advances locked (one), the advances locked in id order (one), their
    payouts aggregated (one), then only when something changed: the advances updated (one), the audit rows
    (one), the webhook events (one per final status reached), the `<advance>:fee` journals looked up (one, when
    a fee grows), the fee accounts read and the fee journals posted (three).

    Returns the advances that changed (as updated, in id order); an advance with nothing new is left as it is.
    Safe to call again.
    """
    ids = sorted(set(advance_ids))
    if not ids:
        return []
    open_states = [AdvanceStatus.DISBURSING.value, AdvanceStatus.OVERDUE.value]
    with transaction.atomic():
        with connection.cursor() as cursor:
            # A repayment pass may take money for a due advance now: it locks the company's receivables (its
            # posting) before the advances (its UPDATE). Take the fee receivables first too (in id order), or
            # each waits for the other's row.
            cursor.execute(
                """
                SELECT r.id FROM ledger_account r
                 WHERE r.kind = %s
                   AND (r.owner, r.currency) IN (
                       SELECT c.code, v.currency FROM funding_advance v JOIN funding_company c ON c.id = v.company_id
                        WHERE v.id = ANY(%s) AND v.status = ANY(%s) AND v.due_date <= %s)
                 ORDER BY r.id FOR NO KEY UPDATE
                """,
                [AccountKind.FEE_RECEIVABLE.value, ids, open_states, business_date],
            )
        advances = list(
            Advance.objects.select_for_update(of=("self",))
            .select_related("company")
            .filter(pk__in=ids, status__in=open_states)
            .order_by("pk")
        )
        if not advances:
            return []
        outcomes = _payout_outcomes([a.pk for a in advances])
        changed: list[tuple[Advance, dict, bool, Decimal]] = []  # advance, before, moves, fee added
        for advance in advances:
            total, open_count, succeeded, disbursed_amount, advanced_disbursed, day_amounts = outcomes.get(
                advance.pk, (0, 0, 0, Decimal("0.00"), Decimal("0.00"), Decimal("0"))
            )
            fee = max(money(day_amounts * advance.daily_fee_rate), advance.fee)  # see fee_added below
            moves = open_count == 0 and advance.status == AdvanceStatus.DISBURSING
            if not moves and (disbursed_amount, advanced_disbursed, fee) == (
                advance.disbursed_amount, advance.advanced_disbursed, advance.fee
            ):
                continue
            before = {"status": advance.status}
            if not moves:
                before.update(disbursed_amount=amount_str(advance.disbursed_amount), fee=amount_str(advance.fee))
            # The fee only grows here, as more payouts succeed (each rounded once, half-up). A return lowers it,
            # with its own posting (funding.services.returns); after the due date a return keeps the fee as
            # charged, so a recomputation over the payouts still succeeded may come out lower: the charged fee
            # then stays, and the stored fee never leaves what the fee receivable was posted.
            fee_added = fee - advance.fee
            advance.disbursed_amount = disbursed_amount
            advance.advanced_disbursed = advanced_disbursed
            advance.fee = fee
            if moves:  # the FSM decides, in Python as in the UPDATE's WHERE
                if succeeded == total:
                    advance.mark_disbursed()
                elif succeeded:
                    advance.mark_partially_disbursed()
                else:
                    advance.mark_failed()
            advance.version += 1
            changed.append((advance, before, moves, fee_added))
        if not changed:
            return []
        _advances_update_finished(changed)
        audit_records_insert(events=[
            audit_event_build(
                action=f"advance.{advance.status}" if moves else "advance.settled_in_part",
                obj=advance, actor_label="disbursement", company=advance.company, before=before,
                after={"status": advance.status, "fee": amount_str(advance.fee)}
                | ({} if moves else {"disbursed_amount": amount_str(advance.disbursed_amount)}),
            )
            for advance, before, moves, _ in changed
        ])
        moved: dict[str, list[int]] = {}
        for advance, _, moves, _ in changed:
            if moves:
                moved.setdefault(advance.status, []).append(advance.pk)
        event_ids: list[int] = []
        for status, moved_ids in sorted(moved.items()):
            # Rendered by the database (ADVANCE_DATA_SQL, the representation's fields): an advance of a thousand
            # payouts is not read back row by row.
            event_ids += advance_events_insert(
                event_type=f"advance.{status}", ids_sql="SELECT unnest(%(advance_ids)s::bigint[])",
                params={"advance_ids": moved_ids})
        events_schedule_delivery(event_ids=event_ids)
        # The fees last: the companies' fee accounts, which repayment passes also take, stay locked only for
        # the postings and the COMMIT.
        _advances_post_fees(changed, business_date=business_date)
    return [advance for advance, _, _, _ in changed]


def _payout_outcomes(advance_ids: list[int]) -> dict[int, tuple[int, int, int, Decimal, Decimal, Decimal]]:
    """Per advance, one aggregate over its payouts: (payouts, open ones, succeeded ones, their amount, their
    line part, the sum of each succeeded line part times its fee days). The fee days are those of
    advance_fee_of_payouts: from the value date (the advance's business date for rows older than value dates)
    to the due date, never below zero; PostgreSQL's numeric sum is exact, so the fee is rounded once, in Python,
    as there."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.advance_id, count(*),
                   count(*) FILTER (WHERE p.status <> ALL(%(final)s)),
                   count(*) FILTER (WHERE p.status = %(succeeded)s),
                   coalesce(sum(p.amount) FILTER (WHERE p.status = %(succeeded)s), 0),
                   coalesce(sum(p.advanced_amount) FILTER (WHERE p.status = %(succeeded)s), 0),
                   coalesce(sum(p.advanced_amount
                                * greatest(v.due_date - coalesce(p.value_date, v.business_date), 0))
                            FILTER (WHERE p.status = %(succeeded)s), 0)
              FROM funding_payout p JOIN funding_advance v ON v.id = p.advance_id
             WHERE p.advance_id = ANY(%(ids)s)
             GROUP BY p.advance_id
            """,
            {"final": [str(s) for s in FINAL_PAYOUT_STATES], "succeeded": PayoutStatus.SUCCEEDED.value,
             "ids": advance_ids},
        )
        return {row[0]: (row[1], row[2], row[3], money(row[4]), money(row[5]), row[6]) for row in cursor.fetchall()}


class FinishConflict(RuntimeError):
    """The set-based UPDATE of finished advances moved fewer rows than were locked: never expected, the
    transaction is undone."""


def _advances_update_finished(changed: list[tuple[Advance, dict, bool, Decimal]]) -> None:
    """One UPDATE of every changed advance, from arrays. A move's WHERE names its transition's source states
    (config.fsm.transition_sources); an advance that does not move keeps the state it was locked in."""
    now = timezone.now()
    rows = []
    for advance, before, moves, _ in changed:
        sources = transition_sources(_FINISH_MOVES[advance.status]) if moves else [before["status"]]
        rows.append((advance.pk, advance.status, ",".join(sources), advance.disbursed_amount,
                     advance.advanced_disbursed, advance.fee, advance.version))
        advance.updated_at = now
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE funding_advance v
               SET status = n.status, disbursed_amount = n.disbursed_amount,
                   advanced_disbursed = n.advanced_disbursed, fee = n.fee, version = n.version, updated_at = %s
              FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::numeric[], %s::numeric[], %s::numeric[],
                          %s::integer[])
                   AS n (id, status, sources, disbursed_amount, advanced_disbursed, fee, version)
             WHERE v.id = n.id AND v.status = ANY(string_to_array(n.sources, ','))
               AND v.version = n.version - 1
            """,
            [now, *[list(column) for column in zip(*rows, strict=True)]],
        )
        if cursor.rowcount != len(rows):
            raise FinishConflict(f"{cursor.rowcount} of {len(rows)} finished advances updated")


def _advances_post_fees(changed: list[tuple[Advance, dict, bool, Decimal]], *, business_date: date) -> None:
    """The grown fees, all with one ledger_post_many (postings.advances_post_fees). One fee posting when an
    advance settles at once (the usual case, `<advance>:fee`); a partly settled advance posts its fee as each
    part becomes known (`:fee`, then `:fee:v<version>`). Whether the `<advance>:fee` journal exists decides, not
    whether a fee is stored: a return can bring the stored fee back to 0.00 after that journal was posted."""
    fees = [(advance, fee_added) for advance, _, _, fee_added in changed if fee_added > 0]
    if not fees:
        return
    posted = set(JournalTransaction.objects.filter(
        reference__in=[f"{advance.public_id}:fee" for advance, _ in fees]
    ).values_list("reference", flat=True))
    advances_post_fees(
        fees=[
            (advance, fee_added,
             f"{advance.public_id}:fee:v{advance.version}" if f"{advance.public_id}:fee" in posted
             else f"{advance.public_id}:fee")
            for advance, fee_added in fees
        ],
        business_date=business_date,
    )


def advances_apply_repayments(*, allocations_sql: str, params: dict | None = None) -> int:
    """Apply repayment allocations to their advances, set-based; an advance paid in full becomes `repaid`
    (one `advance.repaid` event each). Runs inside the repayment's transaction.

    `allocations_sql` is a query returning (advance_id, penalty, fee, principal, settles, clears), one row per
    advance: `clears` when everything owed is paid, `settles` when besides no payout of the advance is still
    open (advance_disbursement_open_sql). An overdue advance that clears without settling (a payout's outcome
    still unknown) goes back to `disbursing` (clear_overdue); one that settles becomes `repaid` (mark_repaid).
    Returns the number of advances updated; raises if it differs from the allocations (a concurrent change).
    """
    states = [str(s) for s in ADVANCE_COLLECTABLE_STATES]
    columns = "(advance_id, penalty, fee, principal, settles, clears)"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM ({allocations_sql}) n", params or {})
        expected = cursor.fetchone()[0]
        # Set-based transitions disbursed|partially_disbursed|overdue -> repaid (the FSM's mark_repaid sources)
        # and overdue -> disbursing (clear_overdue's source); a disbursing advance only takes its allocation.
        cursor.execute(
            f"""
            UPDATE funding_advance v
               SET penalty_repaid = v.penalty_repaid + n.penalty,
                   fee_repaid = v.fee_repaid + n.fee,
                   principal_repaid = v.principal_repaid + n.principal,
                   status = CASE WHEN n.settles AND v.status = ANY(%(repayable)s) THEN %(repaid)s
                                 WHEN n.clears AND v.status = ANY(%(clearable)s) THEN %(disbursing)s
                                 ELSE v.status END,
                   aging_bucket = CASE WHEN n.clears THEN '' ELSE v.aging_bucket END,
                   version = v.version + 1,
                   updated_at = now()
              FROM ({allocations_sql}) n {columns}
             WHERE v.id = n.advance_id AND v.status = ANY(%(states)s)
               AND (NOT n.settles OR v.status = ANY(%(repayable)s))
            """,
            {**(params or {}), "repaid": AdvanceStatus.REPAID.value, "disbursing": AdvanceStatus.DISBURSING.value,
             "states": states, "repayable": [str(s) for s in ADVANCE_REPAYABLE_STATES],
             "clearable": [str(s) for s in ADVANCE_CLEARABLE_STATES]},
        )
        updated = cursor.rowcount
    if updated != expected:
        raise RepaymentConflict(f"{updated} advances updated, {expected} allocated: a concurrent change")
    advance_events_insert(
        event_type="advance.repaid",
        ids_sql=f"SELECT n.advance_id FROM ({allocations_sql}) n {columns} WHERE n.settles",
        params=params or {},
    )
    return updated


class RepaymentConflict(Exception):
    """Allocations and the advances they apply to disagree: a concurrent change, never a business outcome."""
