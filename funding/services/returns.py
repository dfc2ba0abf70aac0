"""Returns (退汇, contract 1.7): what a payout sent back by the beneficiary's bank changes on its advance.

Settlement books the return (the payout's transition, the journal, the line's counter, the refund row);
this module owns the advance's side of it: which part of the returned principal was still owed and which was
already repaid (and is refunded), the fee recomputed on what stays disbursed when the return is booked on or
before the due date, the advance's new amounts and version, and its event.
"""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from funding.models import Advance, AdvanceStatus, Payout, PayoutStatus
from funding.representations import advance_representation, amount_str
from funding.services.advances import advance_fee_of_payouts
from funding.services.audit import audit_record
from funding.services.events import event_emit
from ledger.money import money

ZERO = Decimal("0.00")

# Advances whose disbursed amounts and fee are already set: a return changes them. Before that (an advance
# still disbursing) the finisher computes them from the payouts that succeeded, so a returned one is left out.
ADVANCE_FINISHED_STATES = [
    AdvanceStatus.DISBURSED,
    AdvanceStatus.PARTIALLY_DISBURSED,
    AdvanceStatus.OVERDUE,
    AdvanceStatus.REPAID,
]


@dataclass(frozen=True)
class ReturnEffect:
    """How one returned payout splits on its advance. All amounts 2 places, never negative.

    own_funds: back to the settlement account (the payout's own-funds part).
    principal_released: line part still owed: the receivable and the line's outstanding fall by it.
    principal_refunded: line part already repaid: credited to the settlement account.
    fee_reduced: fee income given back (recomputed fee, return on or before the due date).
    fee_refunded: of fee_reduced, the part already repaid: credited to the settlement account.
    """

    amount: Decimal
    own_funds: Decimal
    principal_released: Decimal
    principal_refunded: Decimal
    fee_before: Decimal
    fee_after: Decimal
    fee_reduced: Decimal
    fee_refunded: Decimal

    @property
    def refund(self) -> Decimal:
        return self.principal_refunded + self.fee_refunded

    @property
    def fee_receivable_released(self) -> Decimal:
        return self.fee_reduced - self.fee_refunded

    def as_dict(self) -> dict[str, str]:
        return {
            "amount": amount_str(self.amount),
            "own_funds": amount_str(self.own_funds),
            "principal_released": amount_str(self.principal_released),
            "principal_refunded": amount_str(self.principal_refunded),
            "fee_before": amount_str(self.fee_before),
            "fee_after": amount_str(self.fee_after),
            "fee_refunded": amount_str(self.fee_refunded),
            "refund": amount_str(self.refund),
        }


def advance_apply_payout_return(
    *, advance: Advance, payout: Payout, business_date: date, actor_label: str
) -> ReturnEffect:
    """Apply a returned payout to its advance. Call inside the return's transaction, with the advance locked
    (select_for_update) and the payout already moved to `returned`.

    The fee is recomputed as in 1.5 on the line parts of the payouts still succeeded (each from its value date)
    when `business_date <= due_date`; later it stays as charged. Of the returned line part, what exceeds the
    principal still owed was repaid and is refunded; likewise the fee repaid above the new fee.
    """
    if payout.status != PayoutStatus.RETURNED or payout.advance_id != advance.pk:
        raise ValueError(f"payout {payout.public_id} is not a returned payout of {advance.public_id}")
    amount, own, line_part = money(payout.amount), money(payout.own_funds_amount), money(payout.advanced_amount)
    fee_before = advance.fee
    if advance.status not in ADVANCE_FINISHED_STATES and not _taken_in(advance, payout):
        # Still disbursing and the payout's success not yet taken into the advance (advance_finish_disbursement
        # takes each success in, even while other payouts are open): the finisher leaves the returned one out.
        advance.returned_amount += amount
        _save(advance, ["returned_amount"])
        effect = ReturnEffect(amount, own, line_part, ZERO, fee_before, fee_before, ZERO, ZERO)
        _record(advance, payout, effect, business_date, actor_label)
        return effect

    advanced_disbursed = advance.advanced_disbursed - line_part
    principal_refunded = max(advance.principal_repaid - advanced_disbursed, ZERO)
    fee_after = fee_before
    if business_date <= advance.due_date:
        still_paid = list(
            Payout.objects.filter(advance=advance, status=PayoutStatus.SUCCEEDED).exclude(pk=payout.pk)
        )
        fee_after = min(
            advance_fee_of_payouts(
                payouts=still_paid,
                daily_fee_rate=advance.daily_fee_rate,
                business_date=advance.business_date,
                due_date=advance.due_date,
            ),
            fee_before,
        )
    fee_refunded = max(advance.fee_repaid - fee_after, ZERO)
    effect = ReturnEffect(
        amount=amount,
        own_funds=own,
        principal_released=line_part - principal_refunded,
        principal_refunded=principal_refunded,
        fee_before=fee_before,
        fee_after=fee_after,
        fee_reduced=fee_before - fee_after,
        fee_refunded=fee_refunded,
    )
    advance.returned_amount += amount
    advance.disbursed_amount -= amount
    advance.advanced_disbursed = advanced_disbursed
    advance.principal_repaid -= principal_refunded
    advance.fee = fee_after
    advance.fee_repaid -= fee_refunded
    _save(
        advance,
        ["returned_amount", "disbursed_amount", "advanced_disbursed", "principal_repaid", "fee", "fee_repaid"],
    )
    _record(advance, payout, effect, business_date, actor_label)
    return effect


def _taken_in(advance: Advance, payout: Payout) -> bool:
    """Whether the advance's disbursed amount already counts `payout` (now returned): it equals the payouts
    still succeeded plus this one."""
    still = Payout.objects.filter(advance=advance, status=PayoutStatus.SUCCEEDED).exclude(pk=payout.pk)
    succeeded = sum((p.amount for p in still), ZERO)
    return advance.status == AdvanceStatus.DISBURSING and advance.disbursed_amount == succeeded + payout.amount


def _save(advance: Advance, fields: list[str]) -> None:
    advance.version += 1
    advance.save(update_fields=[*fields, "version", "updated_at"])


def _record(advance: Advance, payout: Payout, effect: ReturnEffect, business_date: date, actor_label: str) -> None:
    audit_record(
        action="advance.payout_returned",
        obj=advance,
        actor_label=actor_label,
        company=advance.company,
        before={"fee": amount_str(effect.fee_before)},
        after={"payout": payout.public_id, "business_date": business_date.isoformat(),
               "returned_amount": amount_str(advance.returned_amount), **effect.as_dict()},
    )
    event_emit(company=advance.company, type="advance.payout_returned",
        resource_type="advance",
        resource_id=advance.public_id,
        version=advance.version,
        data=advance_representation(advance),
    )
