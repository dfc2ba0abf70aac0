"""Console pages. Thin: check the role, call selectors or reports, render. Served under the admin URL."""

from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from funding.admin_actions import engine_error_text
from funding.console import charts, reports, selectors
from funding.console.errors import PermissionDenied
from funding.console.roles import require_permission
from funding.errors import EngineError
from funding.exports import csv_download
from funding.services.calendar_publication import MAX_FILE_BYTES, calendar_year_propose


def console_view(perm: str) -> Callable:
    """Staff login (the admin's own check and login redirect), then the role's permission, else 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def checked(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            try:
                require_permission(request.user, perm)
            except PermissionDenied as exc:
                raise DjangoPermissionDenied(exc.message) from exc
            return view(request, *args, **kwargs)

        return admin.site.admin_view(checked)

    return decorator


def _context(request: HttpRequest, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


@console_view("view_dashboard")
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    info = selectors.business_date_info(now=now)
    exposures = selectors.company_exposures()
    chart_until = info.current or timezone.localdate(now)
    daily = selectors.daily_disbursed_and_repaid(until=chart_until)
    user = request.user
    context = _context(
        request,
        _("Console"),
        business=info,
        exposures=exposures,
        exposure_totals=selectors.exposure_totals(exposures),
        pending_approvals=selectors.pending_approvals(),
        audit_events=selectors.audit_latest() if user.has_perm("funding.view_auditevent") else None,
        webhooks=selectors.webhooks_undelivered(),
        payouts_by_status=selectors.payouts_by_status(),
        payouts_attention=selectors.payouts_needing_attention(now=now),
        channels=selectors.channel_success_rates(now=now),
        job_runs=selectors.job_runs_latest(),
        reconciliation_exceptions=selectors.reconciliation_exceptions_open(),
        reconciliation_exceptions_count=selectors.reconciliation_exceptions_open_count(),
        utilisation_chart=charts.utilisation_bars(
            [(e.code, e.utilisation) for e in exposures], title=_("Utilisation per company")
        ),
        daily_chart=charts.daily_bars(
            daily, title=_("Disbursed and repaid per business day"),
            first_label=_("Disbursed"), second_label=_("Repaid"),
        ),
        can_view_reports=user.has_perm("console.view_reports"),
    )
    return TemplateResponse(request, "console/dashboard.html", context)


REPORTS = [
    ("console:report_daily_position", gettext_lazy("Daily position")),
    ("console:report_trial_balance", gettext_lazy("Trial balance")),
    ("console:report_account_balances", gettext_lazy("Account balances")),
    ("console:report_channels", gettext_lazy("Channel report")),
]


@console_view("view_reports")
def reports_index(request: HttpRequest) -> HttpResponse:
    return TemplateResponse(request, "console/reports.html", _context(request, _("Reports"), reports=REPORTS))


def _default_date() -> date:
    info = selectors.business_date_info()
    return info.current or timezone.localdate()


def _date_param(request: HttpRequest, name: str, default: date) -> date:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(_("%(name)s must be a date like 2026-11-25.") % {"name": name}) from exc


def _render_report(request: HttpRequest, build: Callable[[], reports.Report], filename: str,
                   fields: list[tuple[str, str, date]]) -> HttpResponse:
    try:
        values = {name: _date_param(request, name, default) for name, _label, default in fields}
    except ValueError as exc:
        context = _context(request, _("Reports"), error=str(exc), report=None,
                           fields=[(n, label, request.GET.get(n, "")) for n, label, _d in fields])
        return TemplateResponse(request, "console/report.html", context, status=400)
    report = build(**values)
    if request.GET.get("format") == "csv":
        stamp = "_".join(v.isoformat() for v in values.values())
        return csv_download(reports.report_csv(report), filename=f"{filename}_{stamp}.csv")
    context = _context(request, report.title, report=report,
                       fields=[(n, label, values[n].isoformat()) for n, label, _d in fields])
    return TemplateResponse(request, "console/report.html", context)


@console_view("view_reports")
def report_daily_position(request: HttpRequest) -> HttpResponse:
    return _render_report(
        request,
        lambda business_date: reports.daily_position(business_date=business_date),
        "daily_position",
        [("business_date", _("Business date"), _default_date())],
    )


@console_view("view_reports")
def report_trial_balance(request: HttpRequest) -> HttpResponse:
    return _render_report(
        request, lambda as_of: reports.trial_balance(as_of=as_of), "trial_balance",
        [("as_of", _("As of"), _default_date())],
    )


@console_view("view_reports")
def report_account_balances(request: HttpRequest) -> HttpResponse:
    return _render_report(
        request, lambda as_of: reports.account_balances(as_of=as_of), "account_balances",
        [("as_of", _("As of"), _default_date())],
    )


@console_view("view_reports")
def report_channels(request: HttpRequest) -> HttpResponse:
    end = _default_date()
    return _render_report(
        request, lambda start, end: reports.channel_report(start=start, end=end), "channel_report",
        [("start", _("From"), end - timedelta(days=6)), ("end", _("To"), end)],
    )


AUDIT_FILTERS = ("company", "object_type", "object_id", "actor")


@console_view("view_audit")
def audit(request: HttpRequest) -> HttpResponse:
    """The append-only audit trail, filterable by company, object and user; CSV with ?format=csv."""
    filters = {name: request.GET.get(name, "").strip()[:150] for name in AUDIT_FILTERS}
    report = reports.audit_report(selectors.audit_trail(**filters))
    if request.GET.get("format") == "csv":
        return csv_download(reports.report_csv(report), filename="audit_trail.csv")
    labels = {"company": _("Company"), "object_type": _("Object type"), "object_id": _("Object id"),
              "actor": _("Who")}
    context = _context(request, report.title, report=report,
                       text_fields=[(name, labels[name], value) for name, value in filters.items()])
    return TemplateResponse(request, "console/report.html", context)


@console_view("view_dashboard")
def work_queues(request: HttpRequest) -> HttpResponse:
    """What is waiting for staff, each row with buttons into the admin actions that do the work.

    The buttons post to the admin's own actions (reason form, four-eyes services, require_permission),
    so the queue page adds no second way to change anything; buttons show only to roles that may use them.
    """
    context = _context(
        request,
        _("Work queues"),
        pending_approvals=selectors.pending_approvals(),
        company_requests=selectors.company_requests_pending(),
        margin_setoffs=selectors.margin_setoffs_pending(),
        credit_lines=selectors.credit_lines_for_queue(),
        manual_reviews=selectors.manual_reviews_open(),
        failed_webhooks=selectors.webhooks_failed(),
        reconciliation_exceptions=selectors.reconciliation_exceptions_open(limit=200),
        reconciliation_exceptions_count=selectors.reconciliation_exceptions_open_count(),
    )
    return TemplateResponse(request, "console/queues.html", context)


@console_view("view_audit")
def sign_ins(request: HttpRequest) -> HttpResponse:
    """For auditors: each staff user's last login and failed login attempts (from the login throttle)."""
    context = _context(
        request,
        _("Staff sign-ins"),
        staff=selectors.staff_sign_ins(),
        failures=selectors.login_failures_latest(),
        days=30,
    )
    return TemplateResponse(request, "console/sign_ins.html", context)


class CalendarYearForm(forms.Form):
    year = forms.IntegerField(min_value=2000, max_value=2100, label=gettext_lazy("Year"))
    file = forms.FileField(label=gettext_lazy("File (CSV: date,kind)"))
    reason = forms.CharField(required=False, max_length=500, label=gettext_lazy("Reference of the notice"))
    replace = forms.BooleanField(required=False, label=gettext_lazy("Replace a pending proposal of the year"))


@console_view("view_dashboard")
def calendar(request: HttpRequest) -> HttpResponse:
    """The published years, the warning before the last published day, the pending proposals (approved in
    the admin's Calendar change requests, by another staff member) and the form to propose a year's file."""
    form = CalendarYearForm()
    status = 200
    if request.method == "POST":
        try:
            require_permission(request.user, "propose_calendar")
        except PermissionDenied as exc:
            raise DjangoPermissionDenied(exc.message) from exc
        form = CalendarYearForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                if upload.size > MAX_FILE_BYTES:
                    raise EngineError(_("The file is too large to be a calendar."), details={})
                proposal = calendar_year_propose(
                    year=form.cleaned_data["year"], content=upload.read(), file_name=upload.name,
                    maker=request.user, reason=form.cleaned_data["reason"], replace=form.cleaned_data["replace"],
                )
            except EngineError as exc:
                form.add_error(None, engine_error_text(exc))
                status = 400
            else:
                messages.success(request, _("Proposed as calendar change #%(id)s: another staff member publishes it.")
                                 % {"id": proposal.pk})
                return HttpResponseRedirect(reverse("console:calendar"))
        else:
            status = 400
    context = _context(
        request,
        _("Business calendar"),
        years=selectors.calendar_years(),
        proposals=selectors.calendar_changes_pending(),
        form=form,
        can_propose=request.user.has_perm("console.propose_calendar"),
    )
    return TemplateResponse(request, "console/calendar.html", context, status=status)
