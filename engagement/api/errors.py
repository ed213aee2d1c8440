"""HTTP errors with one JSON shape, rendered by one middleware."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, BadStatusLine, InvalidHeader, LineTooLong
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestPayloadError
from pydantic import ValidationError
from redis.exceptions import RedisError

from ..visits.registry import AtCapacity

log = logging.getLogger(__name__)


class HTTPError(Exception):
    """An error answered as ``{"error": code, "message": ..., "details": [...]}``."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def response(self) -> web.Response:
        body = {"error": self.code, "message": self.message, "details": self.details}
        return web.json_response(body, status=self.status, headers=self.headers)


class InvalidInput(HTTPError):
    status = 400
    code = "invalid_input"

    @classmethod
    def from_validation(cls, exc: ValidationError, where: str = "body") -> InvalidInput:
        details = [
            {
                "field": ".".join(str(p) for p in err["loc"]) or where,
                "message": err["msg"],
                "type": err["type"],
            }
            for err in exc.errors(include_url=False, include_input=False)
        ]
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        return cls(f"invalid {where}: {first['field']}: {first['message']}{more}", details=details)


class Unauthorized(HTTPError):
    status = 401
    code = "unauthorized"


class Forbidden(HTTPError):
    status = 403
    code = "forbidden"


class NotFound(HTTPError):
    status = 404
    code = "not_found"


class Conflict(HTTPError):
    status = 409
    code = "conflict"


class PayloadTooLarge(HTTPError):
    status = 413
    code = "payload_too_large"


class Unavailable(HTTPError):
    """The engine is at a capacity limit; ``Retry-After`` says when to try again."""

    status = 503
    code = "at_capacity"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class StateUnavailable(Unavailable):
    """Several nodes: Redis, which holds the live state, does not answer (restarting?)."""

    code = "state_unavailable"


REDIS_RETRY_AFTER_S = 1  # Redis restarts in about this long; the tracker retries its batch


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    500: "internal_error",
    504: "timeout",
}
MAX_PROTOCOL_MESSAGE_CHARS = 300  # what aiohttp quotes of a bad line: enough to see which


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render every error as JSON; log the unexpected ones."""
    try:
        return await handler(request)
    except HTTPError as exc:
        return exc.response()
    except AtCapacity as exc:  # from any ingest: the tracker's, or server-side events
        message = f"{exc}: try again in {exc.retry_after_s} s"
        return Unavailable(message, exc.retry_after_s).response()
    except RedisError as exc:  # several nodes: the live state cannot be read nor written
        log.warning("Redis unavailable for %s: %s", request.path, exc)
        message = f"the live state (Redis) does not answer: try again in {REDIS_RETRY_AFTER_S} s"
        return StateUnavailable(message, REDIS_RETRY_AFTER_S).response()
    except RequestPayloadError as exc:  # a body the client broke (bad gzip, bad chunks)
        reason = _reason(exc.__cause__ or exc)
        message = f"the body could not be read: {reason}"
        return InvalidInput(message, details=[{"field": "body", "message": reason}]).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 413:
            message = f"request body is larger than {request.app._client_max_size} bytes"
        else:
            message = (
                exc.reason if exc.text is None or exc.text.startswith(str(exc.status)) else exc.text
            )
        body = {
            "error": _STATUS_CODES.get(exc.status, "http_error"),
            "message": message,
            "details": [],
        }
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow",)}
        return web.json_response(body, status=exc.status, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        body = {"error": "internal_error", "message": "internal server error", "details": []}
        return web.json_response(body, status=500)


class JSONErrorsHandler(web.RequestHandler):
    """aiohttp's connection handler, answering the errors aiohttp answers by itself (a request
    it cannot parse, before any handler or middleware runs) in the shape above, not as text.

    The status stays aiohttp's choice, and the connection is closed after it, as aiohttp does. A
    client's malformed request is one info line, not an error with a traceback (anyone on the
    internet can send them); a 5xx is still logged by aiohttp with its cause.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:
            super().handle_error(request, status, exc, message)  # logs the traceback
        elif request.writer.output_size > 0:  # what aiohttp does: too late for an answer
            raise ConnectionError("the response had begun: no room for the error")
        else:
            log.info("malformed request from %s: %s", request.remote, _protocol_message(exc))
        body = {
            "error": _protocol_code(exc) if status == 400 else _STATUS_CODES.get(status, "error"),
            "message": _server_message(status) if status >= 500 else _protocol_message(exc),
            "details": [],
        }
        response = web.json_response(body, status=status)
        response.force_close()
        return response


def _protocol_code(exc: BaseException | None) -> str:
    if isinstance(exc, LineTooLong):
        return "line_too_long"
    if isinstance(exc, BadHttpMethod):
        return "bad_method"
    if isinstance(exc, BadStatusLine):
        return "bad_request_line"
    if isinstance(exc, InvalidHeader):
        return "bad_header"
    return "bad_request"


def _server_message(status: int) -> str:  # the cause is in the log, not for the client
    return "the request took too long" if status == 504 else "internal server error"


def _protocol_message(exc: BaseException | None) -> str:
    return f"malformed HTTP request: {_reason(exc)}"


def _reason(exc: BaseException | None) -> str:
    """aiohttp's words for a parse error, on one line and bounded."""
    reason = getattr(exc, "message", None) or str(exc or "") or "bad request"
    reason = " ".join(str(reason).split())  # aiohttp's parser messages span lines
    if len(reason) > MAX_PROTOCOL_MESSAGE_CHARS:
        reason = reason[:MAX_PROTOCOL_MESSAGE_CHARS] + "…"
    return reason
