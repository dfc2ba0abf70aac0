"""A shorter middleware stack for the signed API.

Sessions, the language, CSRF, the logged-in user, OTP and messages serve the admin and the console. A request
to /api/v1/ authenticates by its signature alone (funding.api.authentication), sets and reads no cookie, and
answers in English whatever its Accept-Language; running those six for every API call cost ~7% of its Python
CPU (docs/benchmarks.md). SignedApiMiddleware sits in MIDDLEWARE just before them and sends an API request
through the middleware after it minus BROWSER_ONLY, to the same URLs and views. Every other request, and
every middleware not named in BROWSER_ONLY (a new one applies to the API too), is untouched. MIDDLEWARE
itself keeps Django's own names, so the admin's and `check --deploy`'s checks see them.
"""

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.module_loading import import_string

# The signed API (config/urls.py "api/" + funding/api/urls.py "v1/"). The schema and its docs page, under
# /api/ but not /api/v1/, are browser pages and keep the whole stack.
SIGNED_API_PREFIX = "/api/v1/"

BROWSER_ONLY = frozenset(
    {
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.locale.LocaleMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django_otp.middleware.OTPMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    }
)


class _ApiHandler(BaseHandler):
    """Django's request handling (URL resolution, views, exceptions) under the API's own middleware list."""

    def load_api_middleware(self, paths: list[str]) -> Callable[[HttpRequest], HttpResponse]:
        # BaseHandler.load_middleware reads settings.MIDDLEWARE; this is its synchronous path for `paths`.
        self._view_middleware, self._template_response_middleware, self._exception_middleware = [], [], []
        handler = convert_exception_to_response(self._get_response)
        for path in reversed(paths):
            middleware = import_string(path)(handler)
            if hasattr(middleware, "process_view"):
                self._view_middleware.insert(0, middleware.process_view)
            if hasattr(middleware, "process_template_response"):
                self._template_response_middleware.append(middleware.process_template_response)
            if hasattr(middleware, "process_exception"):
                self._exception_middleware.append(middleware.process_exception)
            handler = convert_exception_to_response(middleware)
        self._middleware_chain = handler
        return handler


def api_middleware() -> list[str]:
    """The middleware an API request goes through after SignedApiMiddleware, in MIDDLEWARE's order."""
    name = f"{__name__}.{SignedApiMiddleware.__name__}"
    if name not in settings.MIDDLEWARE:
        raise ImproperlyConfigured(f"{name} is not in MIDDLEWARE")
    after = settings.MIDDLEWARE[settings.MIDDLEWARE.index(name) + 1 :]
    return [path for path in after if path not in BROWSER_ONLY]


class SignedApiMiddleware:
    """Sends /api/v1/ requests around the BROWSER_ONLY middleware (WSGI, synchronous, like the engine)."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.api_chain = _ApiHandler().load_api_middleware(api_middleware())

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(SIGNED_API_PREFIX):
            return self.get_response(request)
        # LocaleMiddleware is skipped, and a worker's thread keeps the language its last browser request
        # activated: an API answer is always in the default language.
        translation.activate(settings.LANGUAGE_CODE)
        return self.api_chain(request)
