"""The one place where errors become HTTP responses (api layer).

Every error body is JSON {"error": kind, "kind": kind, "detail": one line, "field": name or null},
with the status from vmdeck.errors (each error class carries its own): the same
kinds the CLI turns into exit codes.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vmdeck.errors import VmdeckError

__all__ = ["Unauthorized", "Forbidden", "error_body", "install_error_handlers"]

log = logging.getLogger("vmdeck.api")


class Unauthorized(VmdeckError):
    http_status = 401
    kind = "unauthorized"


class Forbidden(VmdeckError):
    http_status = 403
    kind = "forbidden"


_HTTP_KINDS = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_input"}


def error_body(kind: str, detail: str, field: str | None = None) -> dict[str, str | None]:
    return {"error": kind, "kind": kind, "detail": detail, "field": field}


def error_response(error: VmdeckError) -> JSONResponse:
    return JSONResponse(error_body(error.kind, error.message, getattr(error, "field", None)),
                        status_code=error.http_status)


def _validation_field(loc: tuple[object, ...]) -> str:
    # ("body", "vcpus") -> "vcpus"; ("query", "force") -> "force": the name the client sent.
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(VmdeckError)
    async def _vmdeck(_request: Request, error: VmdeckError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
        field = _validation_field(tuple(first.get("loc", ())))
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        return JSONResponse(error_body("invalid_input", f"{field}: {message}" if field else message, field or None),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        kind = _HTTP_KINDS.get(error.status_code, "error")
        return JSONResponse(error_body(kind, str(error.detail)), status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # The last resort (a bug): the traceback goes to the server's log, never to the client.
        log.error("unexpected error in %s %s", request.method, request.url.path, exc_info=error)
        return JSONResponse(error_body("internal", f"unexpected error: {type(error).__name__}"), status_code=500)
