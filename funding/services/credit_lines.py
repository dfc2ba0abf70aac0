"""Companies and credit lines: maker proposes, a different checker approves; freezes act at once."""

from datetime import date
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from funding.errors import DuplicatePendingRequest, FourEyesViolation, InvalidState, ValidationFailed
from funding.models import (
    ChangeRequestKind,
    ChangeRequestStatus,
    Company,
    CreditLine,
    CreditLineChangeRequest,
    CreditLineStatus,
)
from funding.representations import amount_str
from funding.selectors import credit_line_view
from funding.services.audit import audit_record
from funding.services.events import event_emit
from funding.services.line_counters import line_set_limits
from ledger.models import AccountKind
from ledger.money import MAX_AMOUNT, money, rate
from ledger.services import account_get_or_create

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
}


TERM_BOUNDS = {
    "approved_limit": (Decimal(0), MAX_AMOUNT),
    # A daily rate of 100% or more is a typo, and the column holds at most 6 integer digits.
    "daily_fee_rate": (Decimal(0), Decimal("0.999999")),
    "penalty_rate": (Decimal(0), Decimal("0.999999")),
    "flow_multiple": (Decimal(0), Decimal("9999.9999")),
    "margin_multiple": (Decimal(0), Decimal("9999.9999")),
    "flow_window_days": (1, 366),
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
            errors[key] = ["Not a valid value."]
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


def _json_terms(parsed: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else str(v) if isinstance(v, Decimal) else v)
            for k, v in parsed.items()}


def company_create(
    *,
    code: str,
    legal_name: str,
    settlement_account_no: str,
    margin_account_no: str | None = None,
    webhook_url: str = "",
    actor: AbstractBaseUser | None = None,
) -> Company:
    """Create a payment company and its ledger accounts."""
    with transaction.atomic():
        company = Company.objects.create(
            code=code,
            legal_name=legal_name,
            settlement_account_no=settlement_account_no,
            margin_account_no=margin_account_no or None,
            webhook_url=webhook_url,
        )
        company_ensure_accounts(company=company)
        audit_record(action="company.created", obj=company, actor=actor, company=company,
                     after={"code": code, "legal_name": legal_name})
    return company


def company_update(
    *, company: Company, legal_name: str, webhook_url: str, actor: AbstractBaseUser, reason: str = ""
) -> Company:
    """Staff edit the company's descriptive fields; its code and account numbers never change."""
    with transaction.atomic():
        company = Company.objects.select_for_update().get(pk=company.pk)
        before = {"legal_name": company.legal_name, "webhook_url": company.webhook_url}
        after = {"legal_name": legal_name, "webhook_url": webhook_url}
        if before == after:
            return company
        company.legal_name, company.webhook_url = legal_name, webhook_url
        company.save(update_fields=["legal_name", "webhook_url", "updated_at"])
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
            line = CreditLine.objects.create(company=company, created_by=actor, **{
                **parsed, "approved_limit": 0,
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


def _apply_terms(line: CreditLine, terms: dict[str, Any]) -> list[str]:
    parsed = _parse_terms(terms)
    fields = []
    for key, value in parsed.items():
        if key == "approved_limit":
            continue
        setattr(line, key, value)
        fields.append(key)
    if "approved_limit" in parsed:
        # The effective limit is the approved limit until the nightly factors lower it again.
        line_set_limits(line_id=line.pk, approved_limit=parsed["approved_limit"],
                        effective_limit=parsed["approved_limit"])
        line.limit_factors = [{"factor": "approved_limit", "value": amount_str(parsed["approved_limit"])}]
        fields.append("limit_factors")
    return fields


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
        if request.kind in (ChangeRequestKind.APPROVE_LINE, ChangeRequestKind.CHANGE_TERMS):
            if request.kind == ChangeRequestKind.APPROVE_LINE:
                line.approve()
                fields.append("status")
            fields += _apply_terms(line, request.proposed)
            if "approved_limit" in request.proposed:
                event_type = "credit_line.limit_changed"
        elif request.kind == ChangeRequestKind.UNFREEZE:
            line.unfreeze()
            fields.append("status")
            event_type = "credit_line.unfrozen"
        elif request.kind == ChangeRequestKind.RESUME:
            line.resume()
            fields.append("status")
        line.save(update_fields=fields)
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
    return line


def credit_line_expire(*, credit_line: CreditLine, actor_label: str, reason: str) -> CreditLine:
    with transaction.atomic():
        line = _lock_line(credit_line.pk)
        before = line.status
        line.expire()
        line.save(update_fields=["status", "updated_at"])
        audit_record(action="credit_line.expired", obj=line, actor_label=actor_label, company=line.company,
                     before={"status": before}, after={"status": "expired"}, reason=reason)
    return line


def credit_line_emit_event(*, line: CreditLine, type: str) -> None:
    """Bump the line's version and write the event, inside the caller's transaction."""
    CreditLine.objects.filter(pk=line.pk).update(version=F("version") + 1)
    line.refresh_from_db(fields=["version"])
    # The data is the credit line as GET /api/v1/credit-line renders it at the time of the event.
    event_emit(company=line.company, type=type, resource_type="credit_line", resource_id=str(line.pk),
               version=line.version, data=credit_line_view(company=line.company))
