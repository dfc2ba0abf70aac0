"""Step 1: claim a due pending payout, route it, write its attempt and post its funds out, in one transaction
that commits BEFORE the channel is called (a crash after the call can never forget the call)."""


import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Subquery
from django.utils import timezone

from config.db import prepared_cursor
from config.fsm import fsm_update_exactly
from funding.models import ADVANCE_OPEN_PAYOUT_STATES, Advance, AdvanceStatus, Payout, PayoutStatus
from funding.services.audit import audit_record
from funding.services.calendar import business_date_current
from ledger.models import Account, AccountKind
from ledger.services import account_release_hold, ledger_post_many
from settlement.models import AttemptStatus, PayoutAttempt
from settlement.services.channels import channel_fee
from settlement.services.disbursement.common import (
    LIVE,
    emit_payout_event,
    ensure_channel_accounts,
    lock_accounts,
    lock_money_rows,
    next_query_time,
    retrying,
    route_payout,
    routing_inputs,
)
from settlement.services.postings import (
    funds_out_posting,
    payout_post_funds_out,
    payout_release_unsent,
)


@dataclass
class Claim:
    attempt_id: int | None = None
    finished_payout: bool = False  # a payout became final without an attempt


def payout_claim_next(*, advance_id: int, now: datetime | None = None) -> Claim | None:
    """Claim one due pending payout of the advance and commit its attempt. None: nothing left to claim."""
    now = now or timezone.now()
    return retrying(lambda: _claim_next(advance_id, now))


def _claim_next(advance_id: int, now: datetime) -> Claim | None:
    with transaction.atomic():
        # Lock order everywhere: advance, then payout, then attempt. The advance is locked only while it is
        # still `reserved` (the move to `disbursing` races with a cancel); once disbursing, a cancel is
        # impossible and claims of one advance's payouts run in parallel (SKIP LOCKED on the payouts).
        advance = Advance.objects.select_related("company").filter(pk=advance_id).first()
        if advance is not None and advance.status == AdvanceStatus.RESERVED:
            advance = (
                Advance.objects.select_for_update(of=("self",))
                .select_related("company")
                .filter(pk=advance_id)
                .first()
            )
        # An overdue advance may still have a payout to send: a retry after an explicit failure of a payout whose
        # outcome was unknown when the succeeded ones' part fell due (contract 1.7).
        if advance is None or advance.status not in ADVANCE_OPEN_PAYOUT_STATES:
            return None
        payout = (
            Payout.objects.select_for_update(skip_locked=True)
            .filter(advance=advance, status=PayoutStatus.PENDING)
            .exclude(dispatch_after__gt=now)
            .order_by("sequence")
            .first()
        )
        if payout is None:
            return None
        payout.advance = advance
        if advance.status == AdvanceStatus.RESERVED:
            advance.start_disbursing()
            advance.version += 1
            advance.save(update_fields=["status", "version", "updated_at"])
        attempts = list(payout.attempts.all())
        if any(a.status in (*LIVE, AttemptStatus.SUCCEEDED) for a in attempts):
            # Cannot happen through this code; refuse loudly rather than send twice.
            raise RuntimeError(f"payout {payout.public_id} is pending with a live attempt")
        business_date = business_date_current()
        if payout.attempt_count >= settings.DISBURSEMENT_MAX_ATTEMPTS:
            _fail_unsent(payout, code=payout.failure_code or "max_attempts_reached")
            return Claim(finished_payout=True)
        decision = route_payout(payout=payout, attempts=attempts, now=now)
        if decision.channel is None:
            if decision.impossible:
                _fail_unsent(payout, code=payout.failure_code or "no_eligible_channel")
                return Claim(finished_payout=True)
            payout.dispatch_after = now + timedelta(seconds=settings.DISBURSEMENT_WAIT_FOR_CHANNEL_SECONDS)
            payout.save(update_fields=["dispatch_after", "updated_at"])
            return Claim()
        channel = decision.channel
        number = payout.attempt_count + 1
        attempt = PayoutAttempt(
            payout=payout,
            number=number,
            serial=f"{payout.public_id}-{number}",
            channel=channel,
            amount=payout.amount,
            fee=channel_fee(channel=channel, amount=payout.amount),
            routing=decision.as_json(),
            review_due_at=now + timedelta(seconds=settings.DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS),
        )
        attempt.next_query_at = next_query_time(attempt=attempt, channel=channel, now=now)
        attempt.save()
        payout.start_attempt()
        payout.attempt_count = number
        payout.dispatch_after = None
        payout.version += 1
        lock_money_rows(payout, channel)
        payout_post_funds_out(
            payout=payout, channel=channel, serial=attempt.serial, business_date=business_date
        )
        payout.save(
            update_fields=["status", "attempt_count", "dispatch_after", "version", "funds_out", "value_date",
                           "updated_at"]
        )
    return Claim(attempt_id=attempt.pk)


def _fail_unsent(payout: Payout, *, code: str) -> None:
    """Final failure of a payout whose funds are not out: give back its holds."""
    payout.mark_failed()
    payout.failure_code = code
    payout.version += 1
    list(
        Account.objects.select_for_update(no_key=True)
        .filter(kind=AccountKind.SETTLEMENT, owner=payout.advance.company.code)
        .values_list("pk")
    )
    payout_release_unsent(payout=payout)
    payout.save(update_fields=["status", "failure_code", "version", "updated_at"])
    emit_payout_event(payout, "payout.failed")
    audit_record(
        action="payout.failed",
        obj=payout,
        actor_label="disbursement",
        company=payout.advance.company,
        after={"status": "failed", "failure_code": code},
    )


@dataclass
class ClaimedBatch:
    # The attempts as written and committed (channel and payout attached): what the submit step hands over.
    attempts: list[PayoutAttempt] = field(default_factory=list)
    locked: int = 0  # pending payouts locked by the claim (attempted, failed unsent or left waiting)
    own: int = 0  # of which the dispatched advance's own
    finished_payout: bool = False  # a payout became final without an attempt
    # Advances with a payout that became final without an attempt (their finishing step may be due).
    finished_advance_ids: set[int] = field(default_factory=set)

    @property
    def attempt_ids(self) -> list[int]:
        return [attempt.pk for attempt in self.attempts]


def payouts_claim_batch(
    *, advance_id: int, limit: int, now: datetime | None = None, any_due: bool = False
) -> ClaimedBatch | None:
    """Claim up to `limit` due pending payouts (SKIP LOCKED): the advance's own first, then other advances'
    in payout id order (FIFO), so that a batch carries many small advances instead of one each. Route them,
    write their attempts and post their funds out, all in one transaction committed before any channel is
    called.

    None: nothing of the advance left to claim (another batch took it): one statement, no transaction.
    any_due: the other advances' due payouts (same currency) are claimed even when the advance has none left:
    the coalesced dispatch (scheduling.advance_schedule_dispatch), whose task stands for every advance of the
    currency committed while it was queued; None then only when nothing at all is due.
    The statements do not grow with the batch: one SELECT picks the candidates (no locks), one locks the
    dispatched advance while it is `reserved` and one the other `reserved` advances among the candidates (id
    order, SKIP LOCKED: a cancel holding its advance keeps its payouts out, never both), one locks the advance's
    own payouts and one the others' (SKIP LOCKED, re-checking their advance), one reads those advances with
    their companies (one instance each, not one per payout row), one UPDATE moves the advances
    (reserved -> disbursing), one INSERT writes the attempts, one UPDATE moves the payouts (pending ->
    processing, the FSM's sources), one lock of every company's and channel's accounts in id order, one hold
    release per company with own funds, and two INSERTs post every funds-out journal with its entries.
    """
    now = now or timezone.now()
    candidates = _candidates(advance_id, limit, now, any_due=any_due)
    has_own = any(advance == advance_id for _, advance, _ in candidates)
    if not has_own and not (any_due and candidates):
        return None
    return retrying(lambda: _claim_batch(advance_id, limit, candidates, now, any_due=any_due))


def _candidates(advance_id: int, limit: int, now: datetime, *, any_due: bool = False) -> list[tuple[int, int, str]]:
    """Due pending payouts to claim, without locks: (payout id, advance id, advance status), the advance's
    own first (up to `limit`), then, only when it has some (or with any_due), the oldest of other advances of
    its currency with their payouts open to dispatch. A task whose advance has nothing due ends with this one
    statement and one index lookup: the other advances have their own tasks (and the beat sweep). Prepared
    (config.db): planning this UNION of two joins cost 1.2 ms, more than its execution, and every dispatch task
    runs it. The state is written into the text, not bound: a generic plan can use a partial index (`status =
    'pending'`) only when the query's own condition proves it; bound, the cached plan could never use the
    queue's partial index (funding_payout_pending) and took the status index, dead `pending` entries and all.
    The advance's own come from their own partial index (funding_payout_pending_own: advance, id; pending
    only): without it the generic plan could walk the whole queue's index with the advance as a filter, O(queue)
    for every task (247 us of backend CPU for a task whose payouts were taken, with 1,245 pending; a morning's
    backlog is 100 times that)."""
    with prepared_cursor() as cursor:
        cursor.execute(
            _CANDIDATES_SQL,
            {"advance": advance_id, "now": now, "open": [str(s) for s in ADVANCE_OPEN_PAYOUT_STATES],
             "limit": limit, "any_due": any_due},
        )
        rows = cursor.fetchall()
    return rows[:limit]


_CANDIDATES_SQL = f"""
            WITH own AS (
                SELECT p.id, p.advance_id, v.status
                  FROM funding_payout p JOIN funding_advance v ON v.id = p.advance_id
                 WHERE p.advance_id = %(advance)s::bigint AND p.status = '{PayoutStatus.PENDING.value}'
                   AND (p.dispatch_after IS NULL OR p.dispatch_after <= %(now)s::timestamptz)
                   AND v.status = ANY(%(open)s::text[])
                 ORDER BY p.id LIMIT %(limit)s::integer
            )
            (SELECT id, advance_id, status FROM own ORDER BY id)
            UNION ALL
            (SELECT p.id, p.advance_id, v.status
               FROM funding_payout p JOIN funding_advance v ON v.id = p.advance_id
              WHERE (%(any_due)s::boolean OR EXISTS (SELECT 1 FROM own))
                AND p.status = '{PayoutStatus.PENDING.value}' AND p.advance_id <> %(advance)s::bigint
                AND (p.dispatch_after IS NULL OR p.dispatch_after <= %(now)s::timestamptz)
                AND v.status = ANY(%(open)s::text[])
                AND v.currency = (SELECT currency FROM funding_advance WHERE id = %(advance)s::bigint)
              ORDER BY p.id LIMIT %(limit)s::integer)
"""


def _claim_batch(
    advance_id: int, limit: int, candidates: list[tuple[int, int, str]], now: datetime, *, any_due: bool = False
) -> ClaimedBatch | None:
    with transaction.atomic():
        # Lock order as everywhere: advances, payouts, attempts, accounts, credit lines. Advances are locked only
        # while `reserved` (the move to `disbursing` races with a cancel; once disbursing or overdue a cancel is
        # impossible, and a repayment pass may hold an overdue one after the company's accounts, so those are
        # not locked). The dispatched advance is locked first and waited for (another batch moving it commits
        # in milliseconds; after it, this batch takes the next of its payouts instead of giving up); the
        # others' are locked in id order with SKIP LOCKED, never waited for. Only a transaction holding no
        # advance ever waits for one, so advance locks cannot deadlock.
        own_status = next((status for _, advance, status in candidates if advance == advance_id), None)
        locked: set[int] = set()
        if own_status == AdvanceStatus.RESERVED:
            own = Advance.objects.select_for_update().filter(pk=advance_id).values_list("status", flat=True).first()
            if own not in ADVANCE_OPEN_PAYOUT_STATES:
                return None  # cancelled meanwhile
            if own == AdvanceStatus.RESERVED:
                locked.add(advance_id)
        others = sorted({advance for _, advance, status in candidates
                         if status == AdvanceStatus.RESERVED and advance != advance_id})
        if others:
            locked |= set(
                Advance.objects.select_for_update(skip_locked=True)
                .filter(pk__in=others, status=AdvanceStatus.RESERVED)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
        # The payouts from the queue itself (not the candidates read before any lock), SKIP LOCKED: concurrent
        # batches of one large advance take disjoint slices. An advance skipped above (a cancel or another batch
        # holds it) is still `reserved` to these statements: its payouts are left alone; one another batch
        # moved meanwhile is `disbursing` by now.
        dispatchable = Q(advance_id__in=locked) | Q(advance__status__in=[AdvanceStatus.DISBURSING,
                                                                         AdvanceStatus.OVERDUE])
        queue = (
            Payout.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(status=PayoutStatus.PENDING)
            .exclude(dispatch_after__gt=now)
            .order_by("pk")
        )
        payouts = list(queue.filter(dispatchable, advance_id=advance_id)[:limit])
        if not payouts and not any_due:
            return None  # the advance's own were taken meanwhile: leave the others to their own tasks
        if len(payouts) < limit and any(advance != advance_id for _, advance, _ in candidates):
            currency = Advance.objects.filter(pk=advance_id).values("currency")[:1]
            payouts += list(queue.filter(dispatchable, advance__currency=Subquery(currency))
                            .exclude(advance_id=advance_id)[: limit - len(payouts)])
        if not payouts:
            return None  # any_due: every candidate was taken meanwhile
        result = ClaimedBatch(locked=len(payouts), own=sum(p.advance_id == advance_id for p in payouts))
        locked_advances = locked
        # The advances and their companies in one statement, one instance each, rather than joined into every
        # payout row (three model instances per payout, most of them thrown away: a batch of one advance's 250
        # payouts built 500 instances of the same two rows).
        advances: dict[int, Advance] = Advance.objects.select_related("company").in_bulk(
            sorted({payout.advance_id for payout in payouts})
        )
        for payout in payouts:
            payout.advance = advances[payout.advance_id]
        moving = sorted(pk for pk in advances if pk in locked_advances)
        if moving:
            fsm_update_exactly(
                Advance.objects.filter(pk__in=moving),
                Advance.start_disbursing,
                version=F("version") + 1,
                updated_at=timezone.now(),
                expected=len(moving),
            )
            for pk in moving:
                advances[pk].start_disbursing()
                advances[pk].version += 1
        retried = [p.pk for p in payouts if p.attempt_count]
        attempts_of: dict[int, list[PayoutAttempt]] = {}
        if retried:
            for attempt in PayoutAttempt.objects.filter(payout_id__in=retried):
                attempts_of.setdefault(attempt.payout_id, []).append(attempt)
        for payout in payouts:
            if any(a.status in (*LIVE, AttemptStatus.SUCCEEDED) for a in attempts_of.get(payout.pk, [])):
                # Cannot happen through this code; refuse loudly rather than send twice.
                raise RuntimeError(f"payout {payout.public_id} is pending with a live attempt")
        business_date = business_date_current()
        inputs = routing_inputs(now=now)
        review_due_at = now + timedelta(seconds=settings.DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS)
        claimed: list[tuple[Payout, PayoutAttempt]] = []
        unsent: list[tuple[Payout, str]] = []  # final failures without an attempt: their holds go back
        waiting: list[int] = []
        for payout in payouts:
            if payout.attempt_count >= settings.DISBURSEMENT_MAX_ATTEMPTS:
                unsent.append((payout, payout.failure_code or "max_attempts_reached"))
                continue
            decision = route_payout(payout=payout, attempts=attempts_of.get(payout.pk, []), now=now, inputs=inputs)
            if decision.channel is None:
                if decision.impossible:
                    unsent.append((payout, payout.failure_code or "no_eligible_channel"))
                else:
                    waiting.append(payout.pk)
                continue
            channel = decision.channel
            number = payout.attempt_count + 1
            attempt = PayoutAttempt(
                payout=payout,
                number=number,
                serial=f"{payout.public_id}-{number}",
                channel=channel,
                amount=payout.amount,
                fee=channel_fee(channel=channel, amount=payout.amount),
                routing=decision.as_json(),
                review_due_at=review_due_at,
            )
            attempt.next_query_at = next_query_time(attempt=attempt, channel=channel, now=now)
            claimed.append((payout, attempt))
        if waiting:
            # Not a state change: these stay pending until a channel can take them.
            Payout.objects.filter(pk__in=waiting, status=PayoutStatus.PENDING).update(
                dispatch_after=now + timedelta(seconds=settings.DISBURSEMENT_WAIT_FOR_CHANNEL_SECONDS),
                updated_at=now,
            )
        if not claimed and not unsent:
            return result
        attempts = [attempt for _, attempt in claimed]
        if claimed:
            # Attempts and payouts first, the accounts last: the companies' and channels' account rows, which
            # every batch and the API's own-funds holds need, stay locked only for the postings and the COMMIT.
            _insert_attempts(attempts)
            fsm_update_exactly(
                Payout.objects.filter(pk__in=[p.pk for p, _ in claimed], funds_out=False),
                Payout.start_attempt,
                attempt_count=F("attempt_count") + 1,
                dispatch_after=None,
                version=F("version") + 1,
                funds_out=True,
                value_date=business_date,
                updated_at=now,
                expected=len(claimed),
            )
        accounts = _lock_batch_accounts(claimed, [payout for payout, _ in unsent])
        for payout, code in unsent:
            _fail_unsent(payout, code=code)
            result.finished_payout = True
            result.finished_advance_ids.add(payout.advance_id)
        if claimed:
            _post_funds_out(claimed, accounts, business_date=business_date)
            result.attempts = attempts
    return result


def _insert_attempts(attempts: list[PayoutAttempt]) -> None:
    """One INSERT of the batch's attempts (status `processing`, the model's defaults) from one JSON parameter
    (PostgreSQL parses it in C; nine arrays bound value by value cost more than the INSERT); each instance gets
    its id and creation time. What bulk_create writes, without building each row through the ORM. Amounts
    travel as their exact decimal text, times as ISO 8601 with their offset.

    `submitted_at` is the claim's time: the claim commits immediately before the channel call and from that
    commit on the channel may have the request (a worker dying in between leaves it `processing`, which the
    status queries resolve like any unanswered request); one write instead of an UPDATE per attempt later.
    Both are this INSERT's own time (statement_timestamp()), not the transaction's start (now()): the claim may
    have waited for a lock before its payouts were pending again, and an attempt must never look created
    before the failure of the attempt it retries."""
    rows = [
        [a.payout_id, a.number, a.serial, a.channel_id, a.routing, str(a.amount), str(a.fee),
         a.next_query_at.isoformat() if a.next_query_at else None,
         a.review_due_at.isoformat() if a.review_due_at else None]
        for a in attempts
    ]
    with prepared_cursor() as cursor:  # one fixed text: planned once per connection
        cursor.execute(
            """
            INSERT INTO settlement_payoutattempt
                   (payout_id, number, serial, channel_id, status, failure_code, channel_code, decision, routing,
                    amount, fee, created_at, submitted_at, next_query_at, query_count, review_due_at, last_query,
                    resolved_by)
            SELECT (t->>0)::bigint, (t->>1)::integer, t->>2, (t->>3)::bigint, %s::varchar, '', '', '', (t->4)::jsonb,
                   (t->>5)::numeric, (t->>6)::numeric, statement_timestamp(), statement_timestamp(),
                   (t->>7)::timestamptz, 0, (t->>8)::timestamptz,
                   '', ''
              FROM json_array_elements(%s::json) AS t
            RETURNING id, serial, created_at
            """,
            [AttemptStatus.PROCESSING.value, json.dumps(rows)],
        )
        written = {serial: (pk, created) for pk, serial, created in cursor.fetchall()}
    for attempt in attempts:
        attempt.pk, attempt.created_at = written[attempt.serial]
        attempt.submitted_at = attempt.created_at
        attempt._state.adding = False


def _lock_batch_accounts(
    claimed: list[tuple[Payout, PayoutAttempt]], unsent: list[Payout]
) -> dict[tuple[str, str], Account]:
    """Every account the batch's postings touch, whatever the company: the companies' settlement and advance
    receivable, the channels' payouts in transit; one statement, in id order (the global lock order), before
    any of them is changed, so that two batches of overlapping companies cannot deadlock."""
    payouts = [payout for payout, _ in claimed] + unsent
    companies = {payout.advance.company.code for payout in payouts}
    channel_codes = {attempt.channel.code for _, attempt in claimed}
    for code in channel_codes:
        ensure_channel_accounts(code)
    return lock_accounts(
        {(kind, company) for company in companies for kind in (AccountKind.SETTLEMENT, AccountKind.ADVANCE_RECEIVABLE)}
        | {(AccountKind.PAYOUTS_IN_TRANSIT, code) for code in channel_codes},
        currency=payouts[0].advance.currency,
    )


def _post_funds_out(
    claimed: list[tuple[Payout, PayoutAttempt]], accounts: dict[tuple[str, str], Account], *, business_date
) -> None:
    """Funds out of every claimed payout (postings.funds_out_posting, one INSERT for all), whatever its company:
    Dr settlement (own part), Dr advance receivable (bank part) / Cr payouts in transit of the attempt's
    channel. The accounts are locked already (_lock_batch_accounts); each company's own funds are released
    from their hold, then one ledger_post_many."""
    own: dict[str, Decimal] = {}
    for payout, _ in claimed:
        company = payout.advance.company.code
        own[company] = own.get(company, Decimal("0")) + payout.own_funds_amount
    for company, amount in sorted(own.items()):
        if amount:
            account_release_hold(account=accounts[(AccountKind.SETTLEMENT, company)], amount=amount)
    # The line's part stays `reserved` until the outcome is known (contract 1.7); a success draws it.
    ledger_post_many(postings=[
        funds_out_posting(
            payout=payout, serial=attempt.serial, channel_code=attempt.channel.code,
            settlement=accounts[(AccountKind.SETTLEMENT, payout.advance.company.code)],
            receivable=accounts[(AccountKind.ADVANCE_RECEIVABLE, payout.advance.company.code)],
            in_transit=accounts[(AccountKind.PAYOUTS_IN_TRANSIT, attempt.channel.code)],
            business_date=business_date,
        )
        for payout, attempt in claimed
    ])
