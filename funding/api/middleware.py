"""Requests the API refuses before anything reads their body."""

from django.http import HttpRequest, HttpResponse, JsonResponse

from funding.api.errors import error_body


class LengthRequiredMiddleware:
    """A request to /api/ with a Transfer-Encoding header (a chunked body) is answered 411 length_required.

    The signature covers the exact body bytes, and Django reads a body only up to its Content-Length: a chunked
    body would be seen as empty (a confusing authentication_failed) or, behind a proxy that frames it
    differently, as something else than was signed. So it is refused outright, before authentication, in the
    contract's error shape. (gunicorn itself answers 400 to a request with both Transfer-Encoding and
    Content-Length, a request-smuggling shape, and discards an unread body before the next request.)
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "HTTP_TRANSFER_ENCODING" in request.META and request.path.startswith("/api/"):
            return JsonResponse(
                error_body(
                    "length_required",
                    "Send the body with a Content-Length header; chunked transfer encoding is not accepted.",
                ),
                status=411,
            )
        return self.get_response(request)
