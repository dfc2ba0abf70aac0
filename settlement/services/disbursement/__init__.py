"""D0 disbursement: claim a payout, write its attempt, call the channel, apply the answer. At most once.

The order of events for a batch of attempts (one payout is a batch of one):
1. One transaction: lock the payouts (SKIP LOCKED LIMIT n: the dispatched advance's own first, then other
   advances' due payouts, oldest first, so that a morning of one-payout advances goes in batches too; a
   `reserved` advance is locked first, SKIP LOCKED, so that a cancel holding it keeps its payouts out), route
   them, insert the attempts as `processing` and post the funds out, set-based. It commits BEFORE the channel
   is called, so a crash after the call can never forget the call.
2. No transaction: call the channel (`submit_batch`, one per channel). Anything but a clear answer is
   `unknown`.
3. Lock the payouts and the attempts, apply the answers to attempts still live: the successes set-based in one
   transaction, any other answer one attempt at a time.
4. The advances whose payouts became final take their outcomes in, set-based (one transaction for all of them:
   funding's advances_finish_disbursement).

An attempt that is `processing` or `unknown` is only ever queried, never sent again: the partial unique index
(one live attempt per payout) refuses a second attempt, and the code never re-submits an existing one.
A new attempt exists only after an explicit, mapped, retryable failure.
"""

from settlement.services.disbursement.apply import (
    Applied,
    BatchApplied,
    attempt_apply,
    attempts_apply_batch,
    attempts_submit_batch,
    staff_failure_apply,
)
from settlement.services.disbursement.claim import Claim, ClaimedBatch, payout_claim_next, payouts_claim_batch
from settlement.services.disbursement.common import OpenTransactionError, next_query_time, query_delay, route_payout
from settlement.services.disbursement.cycle import (
    advance_dispatch,
    advance_dispatch_batch,
    advance_dispatch_due,
    advance_try_finish,
    advances_try_finish,
    attempts_query_batch,
)
from settlement.services.disbursement.scheduling import advance_schedule_dispatch
from settlement.services.disbursement.sweeps import advances_dispatch_due, advances_finish_sweep, attempts_poll_due

__all__ = [
    "Applied",
    "BatchApplied",
    "Claim",
    "ClaimedBatch",
    "OpenTransactionError",
    "advance_dispatch",
    "advance_dispatch_batch",
    "advance_dispatch_due",
    "advance_schedule_dispatch",
    "advance_try_finish",
    "advances_dispatch_due",
    "advances_finish_sweep",
    "advances_try_finish",
    "attempt_apply",
    "attempts_query_batch",
    "attempts_apply_batch",
    "attempts_submit_batch",
    "attempts_poll_due",
    "next_query_time",
    "payout_claim_next",
    "payouts_claim_batch",
    "query_delay",
    "route_payout",
    "staff_failure_apply",
]
