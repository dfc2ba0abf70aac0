"""Realistic business days on the engine, in this process, through the services: `manage.py simulate_day`.

Five payment companies with different limits, fee rates and limit factors; hundreds of advances a day (some
refused for lack of limit, some cancelled); payouts sent through the simulated channels with failures and
timeouts (failover, status queries, manual review); an extra holiday in the calendar that pushes the due
date. Each business day (`--days`, default 2) runs like the bank's:

  morning   the bank statement of the day arrives (`import_bank_statement`'s service): the companies'
            clearing money, enough for what is due today, on their settlement accounts, except for the weak
            company, which cannot repay; then `collect_repayments` takes what is due
  day       advance requests, disbursement through the channels
  evening   `close_business_day`: what is still due becomes overdue, penalty accrues, the line of a company
            with overdue advances is frozen, limits are recomputed from the statement flow and the margin

After the last evening, one more morning collects the last day's advances (T+1). So the paid companies keep
their limits (the money they repay arrives through the statement, as flow) and the weak one is overdue,
charged penalty and frozen by the real jobs from its first due date's close. Prints progress and a report.

It writes to the configured database (new SIM-... companies, one calendar day changed to a holiday, the
simulated channels' settings): use the demo database of `make run`, never production (refused there).
"""

import io
import logging
import random
import time
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Sum
from django.utils import timezone

from funding.errors import EngineError
from funding.models import (
    ADVANCE_COLLECTABLE_STATES,
    Advance,
    BusinessDay,
    CalendarDay,
    Company,
    WebhookEvent,
)
from funding.selectors import business_days_up_to, outstanding_expression
from funding.services.advances import PayoutInput, advance_cancel, advance_request
from funding.services.bank_statements import bank_statement_import, import_summary
from funding.services.calendar import (
    business_date_initialize,
    calendar_seed_year,
    is_business_day,
    next_business_day,
)
from funding.services.calendar_publication import calendar_change_approve, calendar_day_propose
from funding.services.credit_lines import change_request_approve, company_create, credit_line_create
from ledger.models import Account, AccountKind
from ledger.money import money
from ledger.selectors import account_totals_drift, trial_balance

# code suffix, limit, daily fee rate, flow multiple, margin multiple, own funds, share of the traffic
PROFILES = [
    ("LARGE", "3000000.00", "0.000250", "3.0", "10.0", "150000.00", 0.35),
    ("MID", "1200000.00", "0.000300", "2.5", "8.0", "20000.00", 0.25),
    ("SMALL", "400000.00", "0.000350", "2.0", None, "0.00", 0.15),
    ("TIGHT", "150000.00", "0.000400", None, None, "0.00", 0.15),  # runs out of limit during the day
    ("WEAK", "300000.00", "0.000500", "1.5", "5.0", "0.00", 0.10),  # cannot repay: frozen
]
# name: (daily settlement credits over the last 20 business days, margin deposit): the factors' inputs.
FACTOR_HISTORY = {
    "LARGE": ("1100000.00", "280000.00"),  # flow 3.3M, margin 2.8M: effective 2.8M of 3M approved
    "MID": ("400000.00", "160000.00"),  # flow 1.0M, margin 1.28M: effective 1.0M of 1.2M
    "SMALL": ("250000.00", "0.00"),  # flow 500k: the approved 400k decides
    "WEAK": ("150000.00", "50000.00"),  # flow 225k, margin 250k: effective 225k of 300k
}
BANKS = ["ICBC", "ICBC", "CCB", "ABC", "BOC", "SELF"]
HOLIDAY_NAME = "simulate_day extra holiday"
FINAL_PAYOUT = {"succeeded", "failed", "cancelled", "manual_review"}


class Command(BaseCommand):
    help = "Run a realistic business day on the engine (in this process) and print a report."

    def add_arguments(self, parser):
        parser.add_argument("--advances", type=int, default=400, help="advance requests per day (400)")
        parser.add_argument("--days", type=int, default=2,
                            help="business days to run (2: the weak company is overdue and frozen by the 2nd close)")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument("--failure-rate", type=float, default=0.08, help="channel rejection rate")
        parser.add_argument("--timeout-rate", type=float, default=0.03, help="channel no-answer rate")
        parser.add_argument("--no-holiday", action="store_true", help="leave the calendar as it is")

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    def handle(self, *args, **opts):
        if not settings.LOCAL_RUN:
            raise CommandError(
                f"simulate_day writes demo data; refused with DJANGO_ENV={settings.DJANGO_ENV} (local runs only)."
            )
        started = time.monotonic()
        rng = random.Random(opts["seed"])
        run = timezone.now().strftime("%H%M%S")
        maker, _ = User.objects.get_or_create(username="sim_credit_officer", defaults={"is_staff": True})
        checker, _ = User.objects.get_or_create(username="sim_credit_approver", defaults={"is_staff": True})

        if opts["days"] < 1:
            raise CommandError("--days must be at least 1.")
        first_date = self._calendar()
        self.say(f"== simulate_day run {run}: business date {first_date}, {opts['days']} day(s)")
        due = self._holiday(first_date, maker, checker, skip=opts["no_holiday"])
        self._channels(opts["failure_rate"], opts["timeout_rate"])
        companies = self._companies(run, first_date, maker, checker)
        weak = companies["WEAK"][0]
        codes = [c.code for c, _, _ in companies.values()]

        outcomes: dict[str, Counter] = {n: Counter() for n in companies}
        # One business day: morning (statement, collection), day (advances, disbursement), evening (end of day).
        for day in range(1, opts["days"] + 1):
            business_date = BusinessDay.objects.get().current
            self.say(f"\n== day {day}: business date {business_date}")
            if day > 1:  # staff start the day with yesterday's late answers; the statement then brings the money
                self._channel_answers(companies, business_date, maker, checker, unpaid=weak)
            self._morning(companies, business_date, run, unpaid=weak)
            self.say(f"-- {opts['advances']} advance requests through funding.services.advances")
            self._advances(companies, opts["advances"], rng, outcomes, prefix=f"SIM-{run}-D{day}")
            self.say("-- disbursement: simulated channels, called synchronously (failover, status queries)")
            self._disburse(codes)
            self._evening()
        business_date = BusinessDay.objects.get().current
        self.say(f"\n== T+1 of the last day: business date {business_date}")
        self._morning(companies, business_date, run, unpaid=weak)
        self._report(companies, outcomes, first_date, due, time.monotonic() - started)

    # ------------------------------------------------------------------------------------------ setup

    def _calendar(self) -> date:
        today = timezone.localdate()
        for year in (today.year, today.year + 1):
            calendar_seed_year(year=year)
        if not BusinessDay.objects.exists():
            business_date_initialize(current=today if is_business_day(today) else next_business_day(today))
        day = BusinessDay.objects.get()
        if day.closing:
            raise CommandError("End of day is running; try again when it has finished.")
        return day.current

    def _holiday(self, business_date: date, maker: User, checker: User, *, skip: bool) -> date:
        due_before = next_business_day(business_date)
        if skip:
            self.say(f"calendar unchanged; advances fall due on {due_before}")
            return due_before
        earlier = CalendarDay.objects.filter(date__gt=business_date, name=HOLIDAY_NAME).first()
        if earlier:  # a previous run already added one: do not pile up holidays
            self.say(f"calendar: {earlier.date} is already a simulated holiday; due {due_before}")
            return due_before
        entry = CalendarDay.objects.get(date=due_before)
        if entry.source != "staff":  # four eyes, as staff do it: one proposes, another approves
            proposal = calendar_day_propose(
                day=due_before, kind="holiday", is_business_day=False, name=HOLIDAY_NAME,
                maker=maker, reason="simulate_day: a holiday announced late",
            )
            calendar_change_approve(request=proposal, checker=checker, reason="simulate_day")
        due = next_business_day(business_date)
        self.say(f"calendar: {due_before} made a holiday (announced late); advances now fall due on {due}")
        return due

    def _channels(self, failure_rate: float, timeout_rate: float) -> None:
        from settlement.models import Channel
        from settlement.services.channels import SIMULATED_ERROR_CODES, channel_seed_simulated

        channel_seed_simulated()
        for channel in Channel.objects.filter(code__in=list(SIMULATED_ERROR_CODES)):
            channel.adapter_settings = {
                **channel.adapter_settings,
                "latency_ms": 0,
                "failure_rate": failure_rate,
                "timeout_rate": timeout_rate,
                "late_success_rate": 0.3,
                "late_seconds": 0,
                "failure_codes": [c for c, _, _ in SIMULATED_ERROR_CODES[channel.code]],
            }
            # Open around the clock, so the simulation runs whatever the time of day.
            channel.service_start = channel.service_end = None
            channel.runs_on_non_business_days = True
            channel.save()
        self.say(
            f"channels: {', '.join(Channel.objects.values_list('code', flat=True))} "
            f"(simulated; {failure_rate:.0%} rejected, {timeout_rate:.0%} no answer)"
        )

    def _companies(self, run: str, business_date: date, maker: User, checker: User) -> dict:
        companies = {}
        for n, (name, limit, fee, flow, margin, own, share) in enumerate(PROFILES):
            code = f"SIM-{run}-{name}"
            company = company_create(
                code=code,
                legal_name=f"Simulated {name.title()} Payments Co., Ltd.",
                settlement_account_no=f"31{run}{n:06d}",
                margin_account_no=f"32{run}{n:06d}",
            )
            terms = {
                "approved_limit": limit,
                "daily_fee_rate": fee,
                "penalty_rate": "0.000500",
                "valid_from": date(business_date.year, 1, 1).isoformat(),
                "valid_to": date(business_date.year + 1, 12, 31).isoformat(),
            }
            if flow:
                terms["flow_multiple"] = flow
            if margin:
                terms["margin_multiple"] = margin
            if flow or margin:
                # The factors are computed at approval: the company brings its statement history with it.
                self._factor_history(company, name, run, business_date)
            line = credit_line_create(company=company, terms=terms, actor=maker)
            change_request_approve(request=line.change_requests.get(), checker=checker, reason="simulate_day")
            if Decimal(own) > 0:
                _statement([(company, "C", Decimal(own), f"SIM-OWN-{code}")], business_date,
                           f"simulate_day-{name}.csv", "own funds")
            companies[name] = (company, line, share)
            factors = ", ".join(
                f"{k} {v}" for k, v in (("flow x", flow), ("margin x", margin)) if v
            ) or "no factors"
            self.say(f"company {code}: limit {limit}, fee {fee}/day, {factors}, own funds {own}")
        return companies

    def _factor_history(self, company: Company, name: str, run: str, business_date: date) -> None:
        """20 business days of settlement credits, each swept out the same day (the flow factor counts
        credits; the balance stays as it was), and a margin deposit, through the bank statement import."""
        daily, deposit = FACTOR_HISTORY[name]
        days = business_days_up_to(business_date - timedelta(days=1), 20)
        rows = ["value_date,account_no,direction,amount,reference,counterparty,memo"]
        for day in days:
            for direction in ("C", "D"):
                rows.append(f"{day},{company.settlement_account_no},{direction},{daily},"
                            f"SIM-{run}-{name}-{direction}-{day},UnionPay,history")
        if Decimal(deposit) and company.margin_account_no:
            rows.append(f"{business_date},{company.margin_account_no},C,{deposit},SIM-{run}-{name}-MRG,,margin")
        result = bank_statement_import(stream=io.BytesIO(("\n".join(rows) + "\n").encode()),
                                       filename=f"simulate_day-{name}.csv", imported_by="simulate_day")
        if not result.ok:
            raise CommandError(f"statement history of {name}: {result.rejections}")

    # ------------------------------------------------------------------------------------------- day

    def _advances(self, companies: dict, count: int, rng: random.Random, outcomes: dict, *, prefix: str) -> None:
        names = list(companies)
        weights = [companies[n][2] for n in names]
        today: Counter = Counter()
        accepted: list[tuple[str, Advance]] = []
        for i in range(count):
            name = rng.choices(names, weights)[0]
            company = companies[name][0]
            payouts = [
                PayoutInput(
                    external_id=f"M{i}-{j}",
                    beneficiary_name=f"Merchant {rng.randint(1, 900)} Trading Co.",
                    account_no=f"6222{rng.randint(10**11, 10**12 - 1)}",
                    bank_code=rng.choice(BANKS),
                    amount=money(Decimal(rng.randint(10000, 800000)) / 100),
                )
                for j in range(rng.randint(1, 5))
            ]
            try:
                advance = advance_request(
                    company=company,
                    external_id=f"{prefix}-{i:05d}",
                    amount=sum((p.amount for p in payouts), Decimal("0.00")),
                    payouts=payouts,
                )
                outcomes[name]["accepted"] += 1
                today["accepted"] += 1
                accepted.append((name, advance))
            except EngineError as exc:
                outcomes[name][exc.code] += 1
                today[exc.code] += 1
            # A few companies change their mind before the payouts go out.
            if accepted and rng.random() < 0.03:
                cname, victim = accepted.pop(rng.randrange(len(accepted)))
                try:
                    advance_cancel(
                        company=victim.company, public_id=victim.public_id, actor_label="simulate_day"
                    )
                    outcomes[cname]["cancelled"] += 1
                    today["cancelled"] += 1
                except EngineError as exc:
                    outcomes[cname][f"cancel_{exc.code}"] += 1
                    today[f"cancel_{exc.code}"] += 1
            if (i + 1) % 100 == 0 or i + 1 == count:
                self.say(f"  {i + 1} requests: {dict(today)}")

    def _disburse(self, codes: list[str]) -> None:
        from funding.models import Payout
        from settlement.services.disbursement import (
            advance_dispatch,
            advances_dispatch_due,
            advances_finish_sweep,
            attempts_poll_due,
        )

        # Unresolved attempts go to manual review after hours in production; here after a simulated hour.
        review_after = settings.DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS
        settings.DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS = 3600
        # Each lost or unanswered request is a warning in the log; the rounds below count them. Alerts still show.
        noisy = logging.getLogger("settlement.services.disbursement")
        level = noisy.level
        noisy.setLevel(logging.ERROR)
        try:
            clock = timezone.now()
            for round_ in range(1, 20):
                due = advances_dispatch_due(now=clock)
                sent = sum(advance_dispatch(advance_id=a, now=clock) for a in due)
                clock += timedelta(minutes=20)  # the day goes on: status queries fall due
                polled = attempts_poll_due(now=clock)
                advances_finish_sweep()
                states = dict(Payout.objects.filter(advance__company__code__in=codes)
                              .values_list("status").annotate(n=Count("id")))
                self.say(f"  round {round_}: {sent} sent, {polled} status queries; payouts {states}")
                if set(states) <= FINAL_PAYOUT and not due:
                    break
        finally:
            settings.DISBURSEMENT_MANUAL_REVIEW_AFTER_SECONDS = review_after
            noisy.setLevel(level)

    def _morning(self, companies: dict, business_date: date, run: str, *, unpaid: Company) -> None:
        """The day's bank statement, then the repayment collection. Each paid company's clearing money arrives
        on its settlement account: its usual daily flow (FACTOR_HISTORY), at least what is due today; what is
        more than it needs is swept out the same day, as in its history (the flow factor counts credits)."""
        self.say("-- morning: the bank statement arrives, then collect_repayments")
        rows: list[tuple[Company, str, Decimal, str]] = []
        for name, (company, _, _) in companies.items():
            due = _due_on(company, business_date)
            if company.pk == unpaid.pk:
                self.say(f"  {company.code}: {due} due; no money arrives (it cannot repay)")
                continue
            needed = money(due * Decimal("1.01"))  # what is due, with some to spare
            flow = Decimal(FACTOR_HISTORY.get(name, ("0.00", "0.00"))[0])
            arrives = max(flow, needed)
            reference = f"SIM-{run}-{name}-{business_date}"
            if arrives > 0:
                rows.append((company, "C", arrives, f"{reference}-C"))
            if arrives > needed:
                rows.append((company, "D", arrives - needed, f"{reference}-D"))
            if arrives > 0:
                self.say(f"  {company.code}: {due} due; {arrives} arrives, {needed} stays on the settlement account")
            else:
                self.say(f"  {company.code}: nothing due, no money today")
        if rows:
            self.say(f"  {_statement(rows, business_date, f'simulate_day-{business_date}.csv', 'T+1 settlement')}")
        self._job("collect_repayments")

    def _channel_answers(
        self, companies: dict, business_date: date, maker: User, checker: User, *, unpaid: Company
    ) -> None:
        """The channels' late answers, as staff get them: yesterday's manual reviews decided by two people (the
        advances they held were partly settled: what their other payouts paid was collected already; a late
        success is due at the next collection, without back-dated penalty), then one channel statement with a
        return (退汇) of a payout already repaid, booked by import_channel_statement (contract 2.2)."""
        import tempfile

        from settlement.models import ManualReview, ManualReviewStatus, PayoutAttempt
        from settlement.services.reviews import manual_review_approve, manual_review_propose

        codes = [c.code for c, _, _ in companies.values()]
        partly = Advance.objects.filter(company__code__in=codes, status="disbursing", disbursed_amount__gt=0)
        self.say(f"-- channel answers: {partly.count()} partly settled advance(s) waiting on a manual review")
        for review in ManualReview.objects.filter(status=ManualReviewStatus.OPEN).order_by("id")[:5]:
            try:
                manual_review_propose(review_id=review.pk, outcome="succeeded", maker=maker,
                                      reason="the channel confirmed it by phone")
                manual_review_approve(review_id=review.pk, checker=checker, reason="statement line checked")
                self.say(f"  review {review.pk}: succeeded (maker {maker.username}, checker {checker.username})")
            except EngineError as exc:
                self.say(f"  review {review.pk}: {exc.code}")
        paid = [c for c, _, _ in companies.values() if c.pk != unpaid.pk]
        attempt = (
            PayoutAttempt.objects.filter(status="succeeded", payout__status="succeeded",
                                         payout__advance__company__in=paid,
                                         payout__advance__status="repaid", payout__advanced_amount__gt=0)
            .select_related("channel").order_by("id").first()
        )
        if attempt is None:
            self.say("  no repaid payout to return today")
            return
        self.say(f"  the beneficiary's bank returns {attempt.serial} ({attempt.amount}, 退汇):")
        with tempfile.TemporaryDirectory() as folder:
            statement = Path(folder) / f"{attempt.channel.code}-{business_date}.csv"
            statement.write_text(f"serial,amount,status\n{attempt.serial},{attempt.amount},returned\n",
                                 encoding="utf-8")
            self._job("import_channel_statement", attempt.channel.code, business_date.isoformat(), str(statement))

    def _evening(self) -> None:
        """End of day through the real chain: collection pass, overdue, penalty, freeze, limits, aging."""
        self.say("-- evening: close_business_day (overdue, penalty, freeze, limits)")
        self._job("close_business_day")

    def _job(self, name: str, *args: str) -> None:
        if name not in get_commands():
            self.say(f"  note: `{name}` is not installed in this build; skipped")
            return
        try:
            call_command(name, *args, stdout=self.stdout, stderr=self.stderr)
        except Exception as exc:  # noqa: BLE001 - a demo reports the failure and shows the rest
            self.say(f"  {name} did not complete: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------------------------------------ report

    def _report(
        self, companies: dict, outcomes: dict, business_date: date, due: date, seconds: float
    ) -> None:
        from funding.models import Payout
        from settlement.models import PayoutAttempt

        now = BusinessDay.objects.get().current
        self.say(f"\n== report (from business date {business_date}, first due {due}, now {now}; {seconds:.0f}s)")
        self.say(f"{'company':<24}{'limit':>13}{'reserved':>12}{'outstanding':>13}{'available':>13}"
                 f"{'overdue':>12}{'penalty':>9}  status")
        for company, line, _ in companies.values():
            line.refresh_from_db()
            overdue = Advance.objects.filter(company=company, status="overdue").aggregate(
                n=Count("id"), penalty=Sum("penalty_accrued"))
            self.say(
                f"{company.code:<24}{line.effective_limit:>13}{line.reserved:>12}{line.outstanding:>13}"
                f"{line.available:>13}{overdue['n']:>12}{overdue['penalty'] or Decimal('0.00'):>9}  {line.status}"
            )
        for name, (company, _, _) in companies.items():
            self.say(f"  requests {company.code}: {dict(outcomes[name])}")
        codes = [c.code for c, _, _ in companies.values()]
        advances = Advance.objects.filter(company__code__in=codes)
        self.say(f"advances by status: {dict(advances.values_list('status').annotate(n=Count('id')))}")
        totals = advances.aggregate(
            amount=Sum("amount"), own=Sum("own_funds_amount"), line=Sum("advanced_amount")
        )
        self.say(
            f"accepted {totals['amount']}: from own funds {totals['own']}, from the lines {totals['line']}"
        )
        payouts = Payout.objects.filter(advance__in=advances)
        self.say(f"payouts by status: {dict(payouts.values_list('status').annotate(n=Count('id')))}")
        attempts = (
            PayoutAttempt.objects.filter(payout__in=payouts)
            .values_list("channel__code", "status")
            .annotate(n=Count("id"))
            .order_by("channel__code", "status")
        )
        per_channel: dict[str, dict] = {}
        for channel, status, n in attempts:
            per_channel.setdefault(channel, {})[status] = n
        for channel, states in per_channel.items():
            self.say(f"  channel {channel}: attempts {states}")
        events = WebhookEvent.objects.filter(company__code__in=codes)
        self.say(f"webhook events in the outbox: {dict(events.values_list('type').annotate(n=Count('id')))}")
        returned = payouts.filter(status="returned").aggregate(n=Count("id"), amount=Sum("amount"))
        self.say(f"returns (退汇): {returned['n']} payout(s), {returned['amount'] or Decimal('0.00')}")
        self.say(f"ledger: trial balance {trial_balance()}, account drift {account_totals_drift() or 'none'}")
        in_transit = Account.objects.filter(kind=AccountKind.PAYOUTS_IN_TRANSIT)
        self.say(f"payouts in transit: {sum((a.balance for a in in_transit), Decimal('0.00'))}")


def _due_on(company: Company, business_date: date) -> Decimal:
    """What the company owes on its advances due on or before `business_date`: principal, fee, penalty."""
    total = Advance.objects.filter(
        company=company, status__in=ADVANCE_COLLECTABLE_STATES, due_date__lte=business_date
    ).aggregate(due=Sum(outstanding_expression()))["due"]
    return money(total or Decimal("0.00"))


def _statement(
    rows: list[tuple[Company, str, Decimal, str]], value_date: date, filename: str, memo: str
) -> str:
    """Movements (company, C or D, amount, reference) on the companies' settlement accounts, as the bank's
    statement file, through the statement import (contract 2.1): its credits are the flow the limits are
    computed from. Returns the import's summary."""
    lines = ["value_date,account_no,direction,amount,reference,counterparty,memo"]
    lines += [f"{value_date},{company.settlement_account_no},{direction},{amount},{reference},UnionPay clearing,"
              f"{memo}" for company, direction, amount, reference in rows]
    result = bank_statement_import(stream=io.BytesIO(("\n".join(lines) + "\n").encode()), filename=filename,
                                   imported_by="simulate_day")
    if not result.ok:
        raise CommandError(f"{filename}: {result.rejections}")
    return import_summary(result)
