"""Simulated channels for development and the chaos tests.

The simulated "bank side" lives in its own table (SimulatedChannelTransfer), so every worker process sees
the same transfers and a query or statement answers consistently with what submit did. Each serial's fate
is drawn from a generator seeded with (seed, channel, serial): the same configuration gives the same outcomes
whatever the order in which workers send.

adapter_settings (all optional):
  seed, latency_ms, failure_rate, timeout_rate, late_success_rate, late_seconds,
  timeout_lost_share (share of timeouts the channel never received), failure_codes (its own codes),
  batch_file (takes a whole batch in one request, as BEPS's 批量代付; default: real-time, one per request).
"""

import random
import time
from datetime import date, timedelta
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from config.db import prepared_cursor
from settlement.adapters.base import ChannelAdapter, ChannelError, QueryResult, StatementRow, SubmitResult
from settlement.models import PayoutAttempt, SimulatedChannelTransfer, SimulatedTransferStatus

DEFAULTS = {
    "seed": 1,
    "latency_ms": 0,
    "failure_rate": 0.0,
    "timeout_rate": 0.0,
    "late_success_rate": 0.0,
    "late_seconds": 5,
    "timeout_lost_share": 0.3,
    "failure_codes": ["ACCOUNT_CLOSED"],
    # A batch-file channel (批量代付, as BEPS offers): a whole batch in one request. Otherwise real-time: the
    # engine's batch is sent one payout at a time (ChannelAdapter.submit_batch's default).
    "batch_file": False,
}


class SimulatedTimeout(ChannelError):
    pass


class SimulatedChannelAdapter(ChannelAdapter):
    def _setting(self, key: str):
        return self.settings.get(key, DEFAULTS[key])

    def _rng(self, serial: str) -> random.Random:
        return random.Random(f"{self._setting('seed')}:{self.channel.code}:{serial}")  # noqa: S311

    def _sleep(self) -> None:
        latency = float(self._setting("latency_ms"))
        if latency > 0:
            time.sleep(latency / 1000)

    def _fate(self, attempt: PayoutAttempt, now) -> tuple[SimulatedChannelTransfer | None, bool]:
        """What the bank side does with a new serial: (the transfer it records or None if the request was
        lost, whether the answer times out). Drawn from the serial's own generator, so a batch and single
        submits give the same outcomes."""
        rng = self._rng(attempt.serial)
        draw = rng.random()
        failure_rate = float(self._setting("failure_rate"))
        timeout_rate = float(self._setting("timeout_rate"))
        late_rate = float(self._setting("late_success_rate"))
        status = SimulatedTransferStatus.SUCCEEDED
        final_status = SimulatedTransferStatus.SUCCEEDED
        code = ""
        completes_at = None
        timed_out = False
        if draw < failure_rate:
            status = final_status = SimulatedTransferStatus.FAILED
            code = rng.choice(list(self._setting("failure_codes")))
        elif draw < failure_rate + timeout_rate:
            timed_out = True
            if rng.random() < float(self._setting("timeout_lost_share")):
                return None, True
        elif draw < failure_rate + timeout_rate + late_rate:
            status = SimulatedTransferStatus.PROCESSING
            completes_at = now + timedelta(seconds=float(self._setting("late_seconds")))
        transfer = SimulatedChannelTransfer(
            channel_code=self.channel.code,
            serial=attempt.serial,
            amount=attempt.amount,
            account_no=attempt.payout.account_no,
            status=status,
            final_status=final_status,
            channel_code_result=code,
            value_date=timezone.localdate(),
            completes_at=completes_at,
        )
        return transfer, timed_out

    def submit(self, attempt: PayoutAttempt) -> SubmitResult:
        if self.settings.get("refuse_all"):
            raise ChannelError("simulated outage")
        self._sleep()
        transfer, timed_out = self._fate(attempt, timezone.now())
        if transfer is None:
            existing = SimulatedChannelTransfer.objects.filter(serial=attempt.serial).first()
            if existing is not None:
                return self._answer(existing)
            raise SimulatedTimeout(f"{self.channel.code}: request for {attempt.serial} lost")
        recorded = self._record(transfer)
        if recorded is not transfer:
            # The channel is idempotent on the serial: a repeated request gets the first answer.
            return self._answer(recorded)
        if timed_out:
            raise SimulatedTimeout(f"{self.channel.code}: no answer for {attempt.serial}")
        return self._answer(transfer)

    @property
    def max_in_flight(self) -> int:
        """The simulated bank writes its side through this process's own database connections, one per request
        thread: with Django's connection pool on (DATABASE_POOL), never more threads than the pool has
        connections beside the caller's, or a thread would wait for one and its payout be read as unknown."""
        limit = super().max_in_flight
        pool = (connection.settings_dict.get("OPTIONS") or {}).get("pool")
        if isinstance(pool, dict):
            limit = min(limit, max(1, int(pool.get("max_size", 1)) - 1))
        return limit

    @property
    def native_batch(self) -> bool:  # type: ignore[override]
        return bool(self._setting("batch_file"))

    def submit_batch(self, attempts) -> dict[str, SubmitResult]:
        """A batch file (批量代付): one request carries every payout of the batch; the answer lists each line."""
        if not self.native_batch:
            return super().submit_batch(attempts)
        if self.settings.get("refuse_all"):
            raise ChannelError("simulated outage")
        self._sleep()  # one round trip for the whole file
        existing = {
            t.serial: t for t in SimulatedChannelTransfer.objects.filter(serial__in=[a.serial for a in attempts])
        }
        answers: dict[str, SubmitResult] = {}
        new: list[SimulatedChannelTransfer] = []
        timed_out: set[str] = set()
        now = timezone.now()
        for attempt in attempts:
            if attempt.serial in existing:
                answers[attempt.serial] = self._answer(existing[attempt.serial])
                continue
            transfer, timeout = self._fate(attempt, now)
            if timeout:
                timed_out.add(attempt.serial)
            if transfer is not None:
                new.append(transfer)
        # Idempotent on the serial: a concurrent duplicate keeps the first row (its fate is the same draw).
        SimulatedChannelTransfer.objects.bulk_create(new, ignore_conflicts=True)
        for transfer in new:
            if transfer.serial not in timed_out:
                answers[transfer.serial] = self._answer(transfer)
        for serial in timed_out:
            answers[serial] = SubmitResult("unknown", raw={"error": f"{self.channel.code}: no answer for {serial}"})
        return answers

    def query_batch(self, serials) -> dict[str, QueryResult]:
        if not self.native_batch:
            return super().query_batch(serials)
        self._sleep()
        transfers = {
            t.serial: t
            for t in SimulatedChannelTransfer.objects.filter(serial__in=list(serials), channel_code=self.channel.code)
        }
        answers = {}
        for serial in serials:
            transfer = transfers.get(serial)
            answers[serial] = QueryResult("not_found") if transfer is None else self._query_answer(transfer)
        return answers

    def _record(self, transfer: SimulatedChannelTransfer) -> SimulatedChannelTransfer:
        """The new transfer, or the one already recorded under its serial (one statement when it is new).

        Outside a transaction (the engine calls channels only there) the simulated bank's record commits without
        waiting for the disk: it stands for another institution's system, whose durability is not the engine's
        and must not be billed to it (a flush per payout was a third of a real-time batch's time). Only a crash
        of PostgreSQL itself could lose such a record, never a killed worker, which is what the chaos tests do.
        """
        values = [transfer.channel_code, transfer.serial, str(transfer.amount), transfer.account_no, transfer.status,
                  transfer.final_status, transfer.channel_code_result, transfer.value_date, transfer.completes_at]
        # set_config(..., true) lasts until the end of the statement's own implicit transaction.
        source = "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS bank_side" if (
            not connection.in_atomic_block) else ""
        with prepared_cursor() as cursor:  # two fixed texts: planned once per connection
            cursor.execute(
                "INSERT INTO settlement_simulatedchanneltransfer (channel_code, serial, amount, account_no, status,"
                " final_status, channel_code_result, value_date, received_at, completes_at)"
                " SELECT %s::text, %s::text, %s::numeric, %s::text, %s::text, %s::text, %s::text, %s::date, now(),"
                f" %s::timestamptz {source} ON CONFLICT (serial) DO NOTHING RETURNING id",
                values,
            )
            row = cursor.fetchone()
        if row is None:
            return SimulatedChannelTransfer.objects.get(serial=transfer.serial)
        transfer.pk = row[0]
        return transfer

    @staticmethod
    def _answer(transfer: SimulatedChannelTransfer) -> SubmitResult:
        if transfer.status == SimulatedTransferStatus.SUCCEEDED:
            return SubmitResult("succeeded")
        if transfer.status == SimulatedTransferStatus.FAILED:
            return SubmitResult("failed", code=transfer.channel_code_result)
        return SubmitResult("accepted")

    def _settle(self, transfer: SimulatedChannelTransfer) -> SimulatedChannelTransfer:
        """A late transfer completes once its time has come; one conditional UPDATE, safe across processes. The
        simulated bank's own record, not an engine state: no FSM, the WHERE names the one state it leaves."""
        if transfer.status == SimulatedTransferStatus.PROCESSING and transfer.completes_at <= timezone.now():
            SimulatedChannelTransfer.objects.filter(
                pk=transfer.pk, status=SimulatedTransferStatus.PROCESSING
            ).update(status=transfer.final_status)
            transfer.refresh_from_db()
        return transfer

    def query(self, serial: str) -> QueryResult:
        self._sleep()
        transfer = SimulatedChannelTransfer.objects.filter(
            serial=serial, channel_code=self.channel.code
        ).first()
        if transfer is None:
            return QueryResult("not_found")
        return self._query_answer(transfer)

    def _query_answer(self, transfer: SimulatedChannelTransfer) -> QueryResult:
        transfer = self._settle(transfer)
        if transfer.status == SimulatedTransferStatus.SUCCEEDED:
            return QueryResult("succeeded")
        if transfer.status == SimulatedTransferStatus.FAILED:
            return QueryResult("failed", code=transfer.channel_code_result)
        return QueryResult("processing")

    def statement(self, statement_date: date) -> list[StatementRow]:
        rows = []
        for transfer in SimulatedChannelTransfer.objects.filter(
            channel_code=self.channel.code, value_date=statement_date
        ).order_by("serial"):
            transfer = self._settle(transfer)
            if transfer.status == SimulatedTransferStatus.PROCESSING:
                continue  # not booked yet: tomorrow's statement will carry it
            rows.append(
                StatementRow(
                    serial=transfer.serial,
                    amount=Decimal(transfer.amount),
                    status=transfer.status,
                    code=transfer.channel_code_result,
                    value_date=transfer.value_date,
                )
            )
        return rows
