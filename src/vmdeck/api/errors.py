"""The one place where errors become HTTP responses (api layer).

Every error body is JSON {"error": kind, "kind": kind, "detail": one line, "field": name or null},
with the status from vmdeck.errors (each error class carries its own): the same
kinds the CLI turns into exit codes.
"""

from __future__ import annotations

import html
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from vmdeck.api.messages import humane_message
from vmdeck.errors import VmdeckError

__all__ = ["Unauthorized", "Forbidden", "TooLarge", "TooManyAttempts", "error_body", "install_error_handlers"]

log = logging.getLogger("vmdeck.api")


class Unauthorized(VmdeckError):
    http_status = 401
    kind = "unauthorized"


class Forbidden(VmdeckError):
    http_status = 403
    kind = "forbidden"


class TooLarge(VmdeckError):
    """A body bigger than may be stored (an upload past its cap or its project's quota)."""

    http_status = 413
    kind = "too_large"


class TooManyAttempts(VmdeckError):
    """Sign-in throttled: the answer carries Retry-After."""

    http_status = 429
    kind = "too_many_attempts"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")
        self.retry_after = retry_after


_HTTP_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_input"}


# The page's own words are the reader's language's; the detail is the server's (English, as the API's).
_ERROR_PAGE = ("<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\"><title>{status} · vmdeck</title>"
               "<link rel=\"stylesheet\" href=\"/static/css/vmdeck.css\"></head><body><main class=\"card\">"
               "<h1>{status}</h1><p id=\"error-detail\" class=\"val\" lang=\"en\">{detail}</p>"
               "<p><a href=\"/\">{back}</a></p></main></body></html>")


def error_body(kind: str, detail: str, field: str | None = None) -> dict[str, str | None]:
    return {"error": kind, "kind": kind, "detail": detail, "field": field}


# Sent by the vmdeck command line (vmdeck.cli.remote_client): it prints an error as the in-process command
# does, so it wants vmdeck's own message, not the one reworded for a form's field.
PLAIN_MESSAGES_HEADER = "x-vmdeck-messages"


def error_response(error: VmdeckError, *, plain: bool = False) -> JSONResponse:
    headers = {"retry-after": str(error.retry_after)} if isinstance(error, TooManyAttempts) else None
    field = getattr(error, "field", None)
    humane = error.kind == "invalid_input" and not plain
    detail = humane_message(field, error.message) if humane else error.message
    return JSONResponse(error_body(error.kind, detail, field), status_code=error.http_status, headers=headers)


def _validation_field(loc: tuple[object, ...]) -> str:
    # ("body", "vcpus") -> "vcpus"; ("query", "force") -> "force": the name the client sent.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VmdeckError)
    async def _vmdeck(request: Request, error: VmdeckError) -> Response:
        if not request.url.path.startswith("/api/"):  # a page: the browser shows a page, not JSON
            if error.http_status == 404:  # one "not found" page, whether missing or another project's
                from vmdeck.api.pages import not_found_page

                return not_found_page(request, "error.detail", detail=error.message)
            if error.http_status == 403 and getattr(request.state, "principal", None) is not None:
                from vmdeck.api.pages import forbidden_page  # a styled page in plain words

                return forbidden_page(request, error.message)
            from vmdeck.api import i18n

            lang = i18n.choose(request)
            page = _ERROR_PAGE.format(status=error.http_status, detail=html.escape(error.message), lang=lang,
                                      back=html.escape(i18n.translator(lang)("error.back")))
            return HTMLResponse(page, status_code=error.http_status)
        return error_response(error, plain=request.headers.get(PLAIN_MESSAGES_HEADER) == "plain")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        field = _validation_field(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        detail = humane_message(field, message) if field else message
        if detail == message and field:
            detail = f"{field}: {message}"
        return JSONResponse(error_body("invalid_input", detail, field or None), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if error.status_code == 404 and not request.url.path.startswith(("/api/", "/static/")):
            from vmdeck.api.pages import not_found_page  # a browser asked for a page: answer with one

            return not_found_page(request)
        kind = _HTTP_KINDS.get(error.status_code, "error")
        return JSONResponse(error_body(kind, str(error.detail)), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # The last resort (a bug): the traceback goes to the server's log, never to the client.
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse(error_body("internal", f"unexpected error: {type(error).__name__}"), status_code=500)
