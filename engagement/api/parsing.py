"""Reading request bodies and queries into pydantic models: the only way data gets in."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import MultiDictProxy
from pydantic import BaseModel, TypeAdapter, ValidationError

from .errors import HTTPError, InvalidInput, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

JSON_TYPES = frozenset({"application/json"})
BEACON_TYPES = frozenset({"application/json", "text/plain"})  # sendBeacon sends text/plain
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class UnsupportedMediaType(HTTPError):
    status = 415
    code = "unsupported_media_type"


async def read_body(request: web.Request, content_types: frozenset[str] = JSON_TYPES) -> bytes:
    if request.content_type not in content_types:
        wanted = " or ".join(sorted(content_types))
        raise UnsupportedMediaType(
            f"Content-Type must be {wanted}, not {request.content_type!r}",
            details=[{"field": "Content-Type", "message": f"expected {wanted}"}],
        )
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(
            f"request body is larger than the limit of {request.app._client_max_size} bytes"
        ) from exc


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """A posted form; one the client broke (a multipart body without its boundary, a bad
    encoding) is a 400, not an error of the engine."""
    try:
        return await request.post()
    except ValueError as exc:  # multipart and urlencoded parsers raise ValueError (or subclasses)
        raise InvalidInput(
            f"the form could not be read: {exc}",
            details=[{"field": "body", "message": "not a readable form"}],
        ) from exc


def parse(adapter: TypeAdapter[T], body: bytes) -> T:
    """A JSON body in the type it must have: strict, so that `false` is no number, nor `"1"`
    (what the OpenAPI document says is what is accepted)."""
    try:
        return adapter.validate_json(body, strict=True)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc) from exc


async def parse_json(
    request: web.Request, model: type[M], content_types: frozenset[str] = JSON_TYPES
) -> M:
    """Validate the request body against ``model``; 4xx naming the field otherwise."""
    body = await read_body(request, content_types)
    try:
        return model.model_validate_json(body, strict=True)  # as parse() does
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc) from exc


def parse_headers(request: web.Request, model: type[M]) -> M:
    """The headers ``model`` names (by alias, e.g. ``Last-Event-ID``), validated."""
    data = {
        name: request.headers[name]
        for name in (f.alias or key for key, f in model.model_fields.items())
        if name in request.headers
    }
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, where="header") from exc


def parse_query(request: web.Request, model: type[M]) -> M:
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        field = model.model_fields.get(key)
        is_list = field is not None and getattr(field.annotation, "__origin__", None) is list
        data[key] = values if is_list else values[-1]
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput.from_validation(exc, where="query") from exc


def iso_day(value: Any) -> dt.date | None:
    """A form's or query's UTC day, ``YYYY-MM-DD``; empty is none (a ``before`` validator)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError(f"expected a day as YYYY-MM-DD, not {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a day of the calendar") from exc
