"""Simulated channels for development and the chaos tests.

The simulated "bank side" lives in its own table (SimulatedChannelTransfer), so every worker process sees
the same transfers and a query or statement answers consistently with what submit did. Each serial's fate
is drawn from a generator seeded with (seed, channel, serial): the same configuration gives the same outcomes
whatever the order in which workers send.

adapter_settings (all optional):
  seed, latency_ms, failure_rate, timeout_rate, late_success_rate, late_seconds,
  timeout_lost_share (share of timeouts the channel never received), failure_codes (its own codes).
"""

import random
import time
from datetime import date, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

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

    def submit(self, attempt: PayoutAttempt) -> SubmitResult:
        if self.settings.get("refuse_all"):
            raise ChannelError("simulated outage")
        self._sleep()
        existing = SimulatedChannelTransfer.objects.filter(serial=attempt.serial).first()
        if existing is not None:
            # The channel is idempotent on the serial: a repeated request gets the first answer.
            return self._answer(existing)
        rng = self._rng(attempt.serial)
        draw = rng.random()
        failure_rate = float(self._setting("failure_rate"))
        timeout_rate = float(self._setting("timeout_rate"))
        late_rate = float(self._setting("late_success_rate"))
        now = timezone.now()
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
                raise SimulatedTimeout(f"{self.channel.code}: request for {attempt.serial} lost")
        elif draw < failure_rate + timeout_rate + late_rate:
            status = SimulatedTransferStatus.PROCESSING
            completes_at = now + timedelta(seconds=float(self._setting("late_seconds")))
        transfer = self._record(attempt, status, final_status, code, completes_at)
        if timed_out:
            raise SimulatedTimeout(f"{self.channel.code}: no answer for {attempt.serial}")
        return self._answer(transfer)

    def _record(self, attempt, status, final_status, code, completes_at) -> SimulatedChannelTransfer:
        try:
            with transaction.atomic():
                return SimulatedChannelTransfer.objects.create(
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
        except IntegrityError:
            return SimulatedChannelTransfer.objects.get(serial=attempt.serial)

    @staticmethod
    def _answer(transfer: SimulatedChannelTransfer) -> SubmitResult:
        if transfer.status == SimulatedTransferStatus.SUCCEEDED:
            return SubmitResult("succeeded")
        if transfer.status == SimulatedTransferStatus.FAILED:
            return SubmitResult("failed", code=transfer.channel_code_result)
        return SubmitResult("accepted")

    def _settle(self, transfer: SimulatedChannelTransfer) -> SimulatedChannelTransfer:
        """A late transfer completes once its time has come; one conditional UPDATE, safe across processes."""
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
