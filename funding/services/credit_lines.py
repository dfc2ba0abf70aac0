"""Companies and credit lines: maker proposes, a different checker approves; freezes act at once."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.fsm import transition_sources
from funding.errors import DuplicatePendingRequest, FourEyesViolation, InvalidState, ValidationFailed
from funding.models import (
    BusinessDay,
    ChangeRequestKind,
    ChangeRequestStatus,
    Company,
    CompanyChangeKind,
    CompanyChangeRequest,
    CompanyChangeStatus,
    CompanyStatus,
    CreditLine,
    CreditLineChangeRequest,
    CreditLineStatus,
    LimitFactorTrigger,
)
from funding.representations import amount_str
from funding.services.audit import audit_record
from funding.services.limits import LIMIT_TERMS, credit_line_limits_recompute
from funding.services.line_counters import line_set_daily_cap
from funding.services.line_events import credit_line_emit_event
from funding.services.thresholds import credit_line_thresholds_check
from ledger.models import AccountKind
from ledger.money import MAX_AMOUNT, money, rate
from ledger.services import account_get_or_create

# A line past its valid_to expires at end of day from any of these (the FSM's `expire` sources).
EXPIRABLE_LINE_STATES = transition_sources(CreditLine.expire, wildcards=False)
# The line whose event announces a company's suspension or reactivation.
SUSPENDABLE_COMPANY_LINE_STATES = [CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN, CreditLineStatus.SUSPENDED]

# Terms a change request may carry, with how each is parsed.
TERM_PARSERS = {
    "approved_limit": lambda v: money(v),
    "daily_fee_rate": lambda v: rate(v),
    "penalty_rate": lambda v: rate(v),
    "valid_from": lambda v: date.fromisoformat(str(v)),
    "valid_to": lambda v: date.fromisoformat(str(v)),
    "flow_multiple": lambda v: None if v in (None, "") else Decimal(str(v)),
    "flow_window_days": lambda v: int(v),
    "margin_multiple": lambda v: None if v in (None, "") else Decimal(str(v)),
    "auto_unfreeze": lambda v: v in (True, "true", "True", "1", 1),
    "daily_cap": lambda v: None if v in (None, "") else _exact_money(v),
    "limit_thresholds": lambda v: _thresholds(v),
}

MAX_THRESHOLDS = 5


def _exact_money(value: Any) -> Decimal:
    amount = Decimal(str(value))
    if not amount.is_finite() or money(amount) != amount:
        raise ValueError("at most 2 fraction digits")
    return money(amount)


def _thresholds(value: Any) -> list[Decimal]:
    """"0.80,0.95" or ["0.8", "0.95"] -> [Decimal("0.80"), Decimal("0.95")]: each above 0 and at most 1.00."""
    items = value.split(",") if isinstance(value, str) else list(value)
    parsed = sorted({Decimal(str(item).strip()) for item in items if str(item).strip()})
    if len(parsed) > MAX_THRESHOLDS or any(not t.is_finite() or t != t.quantize(Decimal("0.01"))
                                           or not Decimal("0") < t <= Decimal("1") for t in parsed):
        raise ValueError("thresholds")
    return [t.quantize(Decimal("0.01")) for t in parsed]


TERM_BOUNDS = {
    "approved_limit": (Decimal(0), MAX_AMOUNT),
    # A daily rate of 100% or more is a typo, and the column holds at most 6 integer digits.
    "daily_fee_rate": (Decimal(0), Decimal("0.999999")),
    "penalty_rate": (Decimal(0), Decimal("0.999999")),
    "flow_multiple": (Decimal(0), Decimal("9999.9999")),
    "margin_multiple": (Decimal(0), Decimal("9999.9999")),
    "flow_window_days": (1, 366),
    "daily_cap": (Decimal(0), MAX_AMOUNT),
}


def _terms_snapshot(line: CreditLine) -> dict[str, Any]:
    return {
        "status": line.status,
        "approved_limit": amount_str(line.approved_limit),
        "effective_limit": amount_str(line.effective_limit),
        "daily_fee_rate": str(line.daily_fee_rate),
        "penalty_rate": str(line.penalty_rate),
        "valid_from": line.valid_from.isoformat(),
        "valid_to": line.valid_to.isoformat(),
        "flow_multiple": None if line.flow_multiple is None else str(line.flow_multiple),
        "flow_window_days": line.flow_window_days,
        "margin_multiple": None if line.margin_multiple is None else str(line.margin_multiple),
        "auto_unfreeze": line.auto_unfreeze,
        "daily_cap": None if line.daily_cap is None else amount_str(line.daily_cap),
        "limit_thresholds": [f"{t:.2f}" for t in line.limit_thresholds],
    }


def _parse_terms(terms: dict[str, Any]) -> dict[str, Any]:
    unknown = set(terms) - set(TERM_PARSERS)
    if unknown:
        raise ValidationFailed(details={k: ["Unknown term."] for k in sorted(unknown)})
    parsed, errors = {}, {}
    for key, value in terms.items():
        try:
            parsed[key] = TERM_PARSERS[key](value)
        except (ValueError, TypeError, ArithmeticError):
            errors[key] = (["Up to 5 thresholds, each above 0 and at most 1.00 with 2 decimals, e.g. 0.80,0.95."]
                           if key == "limit_thresholds" else ["Not a valid value."])
    # Bounds checked here, so that a bad term is a validation error and never a DataError at approval.
    for key, (low, high) in TERM_BOUNDS.items():
        value = parsed.get(key)
        if key in errors or value is None:
            continue
        if isinstance(value, Decimal) and not value.is_finite():
            errors[key] = ["Not a valid value."]
        elif not low <= value <= high:
            errors[key] = [f"Must be between {low} and {high}."]
    if errors:
        raise ValidationFailed(details=errors)
    _check_validity_period(parsed.get("valid_from"), parsed.get("valid_to"))
    return parsed


def _check_validity_period(valid_from: date | None, valid_to: date | None) -> None:
    if valid_from is not None and valid_to is not None and valid_to < valid_from:
        raise ValidationFailed(details={"valid_to": ["Must not be before valid_from."]})


def _json_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value.isoformat() if isinstance(value, date) else str(value) if isinstance(value, Decimal) else value


def _json_terms(parsed: dict[str, Any]) -> dict[str, Any]:
    return {k: _json_value(v) for k, v in parsed.items()}


def company_create(
    *,
    code: str,
    legal_name: str,
    settlement_account_no: str,
    margin_account_no: str | None = None,
    actor: AbstractBaseUser | None = None,
) -> Company:
    """Create a payment company and its ledger accounts."""
    with transaction.atomic():
        company = Company.objects.create(
            code=code,
            legal_name=legal_name,
            settlement_account_no=settlement_account_no,
            margin_account_no=margin_account_no or None,
        )
        company_ensure_accounts(company=company)
        audit_record(action="company.created", obj=company, actor=actor, company=company,
                     after={"code": code, "legal_name": legal_name})
    return company


def company_update(
    *, company: Company, legal_name: str, actor: AbstractBaseUser, reason: str = ""
) -> Company:
    """Staff edit the company's descriptive fields; its code and account numbers never change.

    The webhook URL is the company's own: it registers it through the API (PUT /api/v1/webhook-endpoint).
    """
    with transaction.atomic():
        company = Company.objects.select_for_update().get(pk=company.pk)
        before = {"legal_name": company.legal_name}
        after = {"legal_name": legal_name}
        if before == after:
            return company
        company.legal_name = legal_name
        company.save(update_fields=["legal_name", "updated_at"])
        audit_record(action="company.updated", obj=company, actor=actor, company=company,
                     before=before, after=after, reason=reason)
    return company


def company_ensure_accounts(*, company: Company) -> None:
    for kind in (AccountKind.ADVANCE_RECEIVABLE, AccountKind.FEE_RECEIVABLE, AccountKind.PENALTY_RECEIVABLE):
        account_get_or_create(kind=kind, owner=company.code)
    account_get_or_create(
        kind=AccountKind.SETTLEMENT, owner=company.code, external_account_no=company.settlement_account_no
    )
    account_get_or_create(
        kind=AccountKind.MARGIN, owner=company.code, external_account_no=company.margin_account_no or ""
    )


def credit_line_create(*, company: Company, terms: dict[str, Any], actor: AbstractBaseUser) -> CreditLine:
    """A maker drafts a line; it takes effect only after `credit_line_submit` and a checker's approval."""
    parsed = _parse_terms(terms)
    missing = {"approved_limit", "valid_from", "valid_to"} - set(parsed)
    if missing:
        raise ValidationFailed(details={k: ["This term is required."] for k in sorted(missing)})
    try:
        with transaction.atomic():
            # The limits (and the daily cap) take effect at approval, through the line's counters.
            line = CreditLine.objects.create(company=company, created_by=actor, **{
                **{k: v for k, v in parsed.items() if k != "daily_cap"}, "approved_limit": 0,
            })
            audit_record(action="credit_line.drafted", obj=line, actor=actor, company=company,
                         after=_json_terms(parsed))
            request = CreditLineChangeRequest.objects.create(
                credit_line=line, kind=ChangeRequestKind.APPROVE_LINE, proposed=_json_terms(parsed),
                current={}, maker=actor, maker_reason="new credit line",
            )
            line.submit()
            line.save(update_fields=["status", "updated_at"])
            audit_record(action="change_request.proposed", obj=request, actor=actor, company=company,
                         after=request.proposed, reason=request.maker_reason)
    except IntegrityError as exc:
        if "funding_one_live_line_per_company" in str(exc):
            raise InvalidState("The company already has a live credit line; propose a change instead.") from exc
        raise
    return line


def _lock_line(line_id: int) -> CreditLine:
    return CreditLine.objects.select_for_update().select_related("company").get(pk=line_id)


def change_request_propose(
    *, credit_line: CreditLine, kind: str, proposed: dict[str, Any], maker: AbstractBaseUser, reason: str
) -> CreditLineChangeRequest:
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    if kind == ChangeRequestKind.APPROVE_LINE:
        raise ValidationFailed(details={"kind": ["New lines are proposed with credit_line_create."]})
    parsed = _parse_terms(proposed) if kind == ChangeRequestKind.CHANGE_TERMS else {}
    if kind == ChangeRequestKind.CHANGE_TERMS and not parsed:
        raise ValidationFailed(details={"proposed": ["Propose at least one term."]})
    try:
        with transaction.atomic():
            line = _lock_line(credit_line.pk)
            allowed = {
                ChangeRequestKind.CHANGE_TERMS: [CreditLineStatus.ACTIVE, CreditLineStatus.FROZEN,
                                                 CreditLineStatus.SUSPENDED],
                ChangeRequestKind.UNFREEZE: [CreditLineStatus.FROZEN],
                ChangeRequestKind.RESUME: [CreditLineStatus.SUSPENDED],
            }[kind]
            if line.status not in allowed:
                raise InvalidState(f"A {kind} request needs the line in {', '.join(allowed)}; it is {line.status}.")
            _check_validity_period(parsed.get("valid_from", line.valid_from),
                                   parsed.get("valid_to", line.valid_to))
            request = CreditLineChangeRequest.objects.create(
                credit_line=line, kind=kind, proposed=_json_terms(parsed), current=_terms_snapshot(line),
                maker=maker, maker_reason=reason,
            )
            audit_record(action="change_request.proposed", obj=request, actor=maker, company=line.company,
                         before=request.current, after=request.proposed, reason=reason)
    except IntegrityError as exc:
        if "funding_one_pending_request_per_kind" in str(exc):
            raise DuplicatePendingRequest() from exc
        raise
    return request


# Written through the line's counters after the save (line_set_limits, line_set_daily_cap), never as columns.
COUNTER_TERMS = ("approved_limit", "daily_cap")


def _apply_terms(line: CreditLine, terms: dict[str, Any]) -> list[str]:
    """Set the terms on the (locked) line; the limits and the daily cap themselves are written after the save."""
    parsed = _parse_terms(terms)
    fields = []
    for key, value in parsed.items():
        if key == "daily_cap":
            continue
        setattr(line, key, value)
        if key not in COUNTER_TERMS:
            fields.append(key)
    return fields


def _business_date() -> date:
    day = BusinessDay.objects.first()
    return day.current if day else timezone.localdate()


def change_request_approve(
    *, request: CreditLineChangeRequest, checker: AbstractBaseUser, reason: str = ""
) -> CreditLineChangeRequest:
    """The checker applies a pending request. The maker can never approve their own request."""
    with transaction.atomic():
        line = _lock_line(request.credit_line_id)
        request = CreditLineChangeRequest.objects.select_for_update().get(pk=request.pk)
        if request.maker_id == checker.pk:
            raise FourEyesViolation()
        if request.status != ChangeRequestStatus.PENDING:
            raise InvalidState(f"The request is already {request.status}.")
        before = _terms_snapshot(line)
        fields = ["updated_at"]
        event_type = None
        recompute = None
        if request.kind in (ChangeRequestKind.APPROVE_LINE, ChangeRequestKind.CHANGE_TERMS):
            if request.kind == ChangeRequestKind.APPROVE_LINE:
                line.approve()
                fields.append("status")
                recompute = LimitFactorTrigger.APPROVAL
            elif set(request.proposed) & set(LIMIT_TERMS):
                recompute = LimitFactorTrigger.LIMIT_CHANGE
            fields += _apply_terms(line, request.proposed)
        elif request.kind == ChangeRequestKind.UNFREEZE:
            line.unfreeze()
            fields.append("status")
            event_type = "credit_line.unfrozen"
        elif request.kind == ChangeRequestKind.RESUME:
            line.resume()
            fields.append("status")
            event_type = "credit_line.reactivated"
        line.save(update_fields=fields)
        business_date = _business_date()
        if "daily_cap" in request.proposed:
            line_set_daily_cap(line_id=line.pk, daily_cap=TERM_PARSERS["daily_cap"](request.proposed["daily_cap"]),
                               business_date=business_date)
        if recompute:
            # The effective limit is the minimum of the factors now, not the approved limit until the night.
            limit_before, limit_after = credit_line_limits_recompute(
                line=line, business_date=business_date, trigger=recompute, actor_label=checker.get_username(),
                change_request=request,
            )
            if "approved_limit" in request.proposed or limit_before != limit_after:
                event_type = "credit_line.limit_changed"
        line.refresh_from_db()
        request.mark_approved()
        request.checker = checker
        request.checker_reason = reason
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        after = _terms_snapshot(line)
        audit_record(action="change_request.approved", obj=request, actor=checker, company=line.company,
                     before=before, after=after, reason=reason)
        audit_record(action=f"credit_line.{request.kind}", obj=line, actor=checker, company=line.company,
                     before=before, after=after, reason=request.maker_reason)
        if event_type:
            credit_line_emit_event(line=line, type=event_type)
        if recompute or "limit_thresholds" in request.proposed:
            credit_line_thresholds_check(line=line, business_date=business_date)
    return request


def change_request_reject(
    *, request: CreditLineChangeRequest, checker: AbstractBaseUser, reason: str
) -> CreditLineChangeRequest:
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        line = _lock_line(request.credit_line_id)
        request = CreditLineChangeRequest.objects.select_for_update().get(pk=request.pk)
        if request.maker_id == checker.pk:
            raise FourEyesViolation()
        if request.status != ChangeRequestStatus.PENDING:
            raise InvalidState(f"The request is already {request.status}.")
        if request.kind == ChangeRequestKind.APPROVE_LINE:
            line.reject()
            line.save(update_fields=["status", "updated_at"])
        request.mark_rejected()
        request.checker = checker
        request.checker_reason = reason
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        audit_record(action="change_request.rejected", obj=request, actor=checker, company=line.company,
                     before=request.current, after=request.proposed, reason=reason)
    return request


def credit_line_freeze(*, credit_line: CreditLine, actor: AbstractBaseUser | None, reason: str,
                       actor_label: str = "") -> CreditLine:
    """Freeze at once (reducing risk needs one person or the overdue job); unfreezing needs four eyes."""
    with transaction.atomic():
        line = _lock_line(credit_line.pk)
        if line.status != CreditLineStatus.ACTIVE:
            raise InvalidState(f"Only an active line can be frozen; it is {line.status}.")
        line.freeze()
        line.save(update_fields=["status", "updated_at"])
        audit_record(action="credit_line.frozen", obj=line, actor=actor, actor_label=actor_label,
                     company=line.company, before={"status": "active"}, after={"status": "frozen"}, reason=reason)
        credit_line_emit_event(line=line, type="credit_line.frozen")
    return line


def credit_line_unfreeze_automatically(*, credit_line: CreditLine, reason: str, actor_label: str) -> CreditLine:
    """For lines configured to unfreeze themselves once cleared; the nightly job calls it."""
    with transaction.atomic():
        line = _lock_line(credit_line.pk)
        if line.status != CreditLineStatus.FROZEN or not line.auto_unfreeze:
            raise InvalidState("Only a frozen line configured with auto_unfreeze unfreezes itself.")
        line.unfreeze()
        line.save(update_fields=["status", "updated_at"])
        audit_record(action="credit_line.unfrozen", obj=line, actor_label=actor_label, company=line.company,
                     before={"status": "frozen"}, after={"status": "active"}, reason=reason)
        credit_line_emit_event(line=line, type="credit_line.unfrozen")
    return line


def credit_line_suspend(*, credit_line: CreditLine, actor: AbstractBaseUser, reason: str) -> CreditLine:
    with transaction.atomic():
        line = _lock_line(credit_line.pk)
        if line.status != CreditLineStatus.ACTIVE:
            raise InvalidState(f"Only an active line can be suspended; it is {line.status}.")
        line.suspend()
        line.save(update_fields=["status", "updated_at"])
        audit_record(action="credit_line.suspended", obj=line, actor=actor, company=line.company,
                     before={"status": "active"}, after={"status": "suspended"}, reason=reason)
        credit_line_emit_event(line=line, type="credit_line.suspended")
    return line


def credit_line_expire(*, credit_line: CreditLine, actor_label: str, reason: str) -> CreditLine:
    """The line is past its validity: no more advances (already drawn amounts are collected as ever). Pending
    requests about it are withdrawn: there is nothing left to approve."""
    with transaction.atomic():
        line = _lock_line(credit_line.pk)
        before = line.status
        line.expire()
        line.save(update_fields=["status", "updated_at"])
        for pending in CreditLineChangeRequest.objects.select_for_update().filter(
            credit_line=line, status=ChangeRequestStatus.PENDING
        ):
            pending.mark_withdrawn()
            pending.decided_at = timezone.now()
            pending.checker_reason = "the line expired"
            pending.save(update_fields=["status", "decided_at", "checker_reason"])
        audit_record(action="credit_line.expired", obj=line, actor_label=actor_label, company=line.company,
                     before={"status": before}, after={"status": "expired"}, reason=reason)
        credit_line_emit_event(line=line, type="credit_line.expired")
    return line


def credit_lines_expire_past_validity(*, company_ids: list[int], next_business_date: date, actor_label: str) -> int:
    """End of day: the companies' lines whose valid_to is before the next business date expire (contract 1.7).
    Returns how many did. Runs in the nightly chunk's transaction."""
    lines = CreditLine.objects.filter(
        company_id__in=company_ids, status__in=EXPIRABLE_LINE_STATES, valid_to__lt=next_business_date
    ).order_by("id")
    expired = 0
    for line in lines:
        credit_line_expire(credit_line=line, actor_label=actor_label,
                           reason=f"valid to {line.valid_to.isoformat()}; next business date "
                                  f"{next_business_date.isoformat()}")
        expired += 1
    return expired


# --- companies: suspension acts at once, reactivation needs four eyes -----------------------------------------


def _company_line(company: Company) -> CreditLine | None:
    return (CreditLine.objects.select_for_update().select_related("company")
            .filter(company=company, status__in=SUSPENDABLE_COMPANY_LINE_STATES).order_by("id").first())


def company_suspend(*, company: Company, actor: AbstractBaseUser, reason: str) -> Company:
    """The bank suspends a company: every advance is refused (company_suspended) until a maker proposes and a
    different checker approves its reactivation. Its live line's event is credit_line.suspended."""
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        company = Company.objects.select_for_update().get(pk=company.pk)
        if company.status != CompanyStatus.ACTIVE:
            raise InvalidState(f"Only an active company can be suspended; it is {company.status}.")
        # The line is locked so that its event's version is ordered with its other changes. A request that read
        # the company before this commits completes (as if it had come a moment earlier); later ones are refused.
        line = _company_line(company)
        company.suspend()
        company.save(update_fields=["status", "updated_at"])
        audit_record(action="company.suspended", obj=company, actor=actor, company=company,
                     before={"status": "active"}, after={"status": "suspended"}, reason=reason)
        if line is not None:
            line.company = company
            credit_line_emit_event(line=line, type="credit_line.suspended")
    return company


def company_reactivation_propose(*, company: Company, maker: AbstractBaseUser, reason: str) -> CompanyChangeRequest:
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    try:
        with transaction.atomic():
            company = Company.objects.select_for_update().get(pk=company.pk)
            if company.status != CompanyStatus.SUSPENDED:
                raise InvalidState(f"Only a suspended company can be reactivated; it is {company.status}.")
            request = CompanyChangeRequest.objects.create(company=company, kind=CompanyChangeKind.REACTIVATE,
                                                          maker=maker, maker_reason=reason)
            audit_record(action="company_change.proposed", obj=request, actor=maker, company=company,
                         after={"kind": request.kind}, reason=reason)
    except IntegrityError as exc:
        if "funding_one_pending_company_request" in str(exc):
            raise DuplicatePendingRequest("A reactivation of this company is already pending.") from exc
        raise
    return request


def _lock_company_request(request: CompanyChangeRequest, checker: AbstractBaseUser) -> CompanyChangeRequest:
    request = CompanyChangeRequest.objects.select_for_update().get(pk=request.pk)
    if request.maker_id == checker.pk:
        raise FourEyesViolation()
    if request.status != CompanyChangeStatus.PENDING:
        raise InvalidState(f"The request is already {request.status}.")
    return request


def company_change_approve(
    *, request: CompanyChangeRequest, checker: AbstractBaseUser, reason: str = ""
) -> CompanyChangeRequest:
    """A checker who is not the maker reactivates the company; its live line's event is credit_line.reactivated."""
    with transaction.atomic():
        company = Company.objects.select_for_update().get(pk=request.company_id)
        request = _lock_company_request(request, checker)
        if company.status != CompanyStatus.SUSPENDED:
            raise InvalidState(f"The company is {company.status}, not suspended.")
        line = _company_line(company)
        company.reactivate()
        company.save(update_fields=["status", "updated_at"])
        request.mark_approved()
        request.checker, request.checker_reason, request.decided_at = checker, reason, timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        audit_record(action="company_change.approved", obj=request, actor=checker, company=company,
                     before={"status": "pending"}, after={"status": "approved"}, reason=reason)
        audit_record(action="company.reactivated", obj=company, actor=checker, company=company,
                     before={"status": "suspended"}, after={"status": "active"}, reason=request.maker_reason)
        if line is not None:
            line.company = company
            credit_line_emit_event(line=line, type="credit_line.reactivated")
    return request


def company_change_reject(*, request: CompanyChangeRequest, checker: AbstractBaseUser, reason: str
                          ) -> CompanyChangeRequest:
    if not reason.strip():
        raise ValidationFailed(details={"reason": ["A reason is required."]})
    with transaction.atomic():
        request = _lock_company_request(request, checker)
        request.mark_rejected()
        request.checker, request.checker_reason, request.decided_at = checker, reason, timezone.now()
        request.save(update_fields=["status", "checker", "checker_reason", "decided_at"])
        audit_record(action="company_change.rejected", obj=request, actor=checker, company=request.company,
                     before={"status": "pending"}, after={"status": "rejected"}, reason=reason)
    return request
