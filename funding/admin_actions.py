"""Admin actions that need input (a reason, proposed terms) show a form page first, then call a service.

The action stays thin: it collects the input, calls the service once per selected object with
request.user as the actor, and reports each business error (four eyes, wrong state) as a message.
"""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils.http import url_has_allowed_host_and_scheme

from funding.errors import EngineError


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=True)


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}), required=False)


def engine_error_text(exc: EngineError) -> str:
    details = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in exc.details.items())
    return f"{exc.message} ({exc.code}{': ' + details if details else ''})"


def _next_url(request: HttpRequest) -> str:
    """Where to go after the action (the console's work queue posts `next`); only a path on this site."""
    url = request.POST.get("next", "")
    ok = url.startswith("/") and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return url if ok else ""


def action_with_form(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    *,
    title: str,
    form_class: type[forms.Form],
    perform: Callable[[Any, dict[str, Any]], object],
    done: str,
    permission: str | None = None,
) -> HttpResponse | None:
    """Show `form_class` for the selected objects; on a valid POST call `perform(obj, cleaned_data)`.

    `permission`: the console permission (roles.py) the user's role must hold, checked before anything else.
    """
    if permission is not None:
        from funding.console.admin_permissions import action_refused

        if action_refused(modeladmin, request, permission):
            return None
    action = request.POST.get("action")
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            succeeded = 0
            for obj in queryset:
                try:
                    perform(obj, form.cleaned_data)
                except EngineError as exc:
                    modeladmin.message_user(request, f"{obj}: {engine_error_text(exc)}", messages.ERROR)
                else:
                    succeeded += 1
            if succeeded:
                modeladmin.message_user(request, f"{done}: {succeeded}.", messages.SUCCESS)
            back = _next_url(request)
            return HttpResponseRedirect(back) if back else None
    else:
        form = form_class()
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "queryset": queryset,
        "form": form,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "next": _next_url(request),
    }
    return TemplateResponse(request, "admin/funding/action_form.html", context)
