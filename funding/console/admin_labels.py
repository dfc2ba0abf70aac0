"""The admin's labels in the staff's language: apps, models, fields, choices, columns, filters and actions.

Models and admin classes name things in English (the code's language, and what migrations record). Once the
admin is assembled, every label it shows is wrapped in gettext_lazy, so it is looked up in the console's
catalogue (locale/zh_Hans) when a page renders. Only what is displayed changes: migrations read a field's
original verbose_name (Field._verbose_name) and a model's original Meta, and a lazy label equals its English
text.
"""

from collections.abc import Iterator

from django.contrib import admin
from django.utils import translation
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy


def _lazy(text):
    """gettext_lazy of the English text. Some defaults are lazy already without being translatable (Django's
    default verbose_name_plural is format_lazy("{}s", verbose_name)): those are rendered in English first."""
    if not isinstance(text, (str, Promise)) or not text:
        return text
    with translation.override("en"):
        return gettext_lazy(str(text))


def _admin_functions(model_admin: admin.ModelAdmin) -> Iterator:
    """Columns, read-only fields and actions: the admin's methods that carry a description."""
    seen = set()
    for name in [*model_admin.list_display, *(model_admin.actions or ()), *dir(type(model_admin))]:
        function = name if callable(name) else getattr(type(model_admin), name, None)
        if function is not None and getattr(function, "short_description", None) and id(function) not in seen:
            seen.add(id(function))
            yield function


# The engine's own apps; Django's and third-party apps (auth, beat, OTP) ship their own catalogues.
OWN_APPS = ("funding", "settlement", "ledger", "config")


def _own(model_or_admin) -> bool:
    return model_or_admin.__module__.startswith(OWN_APPS)


def _registry(site: admin.AdminSite) -> dict:
    return {model: model_admin for model, model_admin in site._registry.items() if _own(model_admin)}


def _models(site: admin.AdminSite) -> Iterator:
    for model, model_admin in _registry(site).items():
        yield model
        for inline in model_admin.inlines:
            yield inline.model


def _holders(site: admin.AdminSite) -> Iterator[tuple[object, str]]:
    """(object, attribute) of every label the admin shows."""
    shown_apps = {model._meta.app_config for model in _registry(site) if _own(model)}
    for app_config in shown_apps:
        yield app_config, "verbose_name"
    for model in filter(_own, _models(site)):
        yield model._meta, "verbose_name"
        yield model._meta, "verbose_name_plural"
        for field in model._meta.get_fields():
            if getattr(field, "verbose_name", None) and not field.auto_created:
                yield field, "verbose_name"
    for model_admin in _registry(site).values():
        for function in _admin_functions(model_admin):
            yield function, "short_description"
        for list_filter in model_admin.list_filter:
            if isinstance(list_filter, type) and getattr(list_filter, "title", None):
                yield list_filter, "title"


def _choice_fields(site: admin.AdminSite) -> Iterator:
    for model in filter(_own, _models(site)):
        for field in model._meta.get_fields():
            if getattr(field, "choices", None) and not field.auto_created:
                yield field


def admin_labels_translatable(site: admin.AdminSite = admin.site) -> None:
    """Wrap every label of the registered admin screens (idempotent)."""
    for holder, attribute in _holders(site):
        setattr(holder, attribute, _lazy(getattr(holder, attribute)))
    for field in _choice_fields(site):
        field.choices = [(value, _lazy(label)) for value, label in field.choices]


def admin_labels(site: admin.AdminSite = admin.site) -> list[str]:
    """Every label the admin shows, in English: what the catalogue must translate."""
    with translation.override("en"):
        labels = {str(getattr(holder, attribute)) for holder, attribute in _holders(site)}
        for field in _choice_fields(site):
            labels.update(str(label) for _, label in field.choices)
    return sorted(label for label in labels if label)
