"""Bounds on what an event carries, so that the store and the code can always hold it.

Checked once at the edge, inside pydantic validation, so that a refusal names the exact field
(``events.0.data.cart.items.3.price``) like every other validation error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from .. import constants as C

Loc = tuple[str | int, ...]
TimezoneOffset = Annotated[
    int,
    Field(
        ge=-C.MAX_TIMEZONE_OFFSET_MIN,
        le=C.MAX_TIMEZONE_OFFSET_MIN,
        description="Date.getTimezoneOffset(): UTC minus local time, minutes",
    ),
]
Title = Annotated[str, StringConstraints(max_length=C.MAX_TITLE_CHARS)]
UrlText = Annotated[str, StringConstraints(max_length=C.MAX_URL_CHARS)]
UserAgent = Annotated[str, StringConstraints(max_length=C.MAX_USER_AGENT_CHARS)]
UtmKey = Annotated[str, StringConstraints(max_length=100)]
UtmValue = Annotated[str, StringConstraints(max_length=C.MAX_TITLE_CHARS)]


def _whole(value: Any) -> Any:
    """JSON, and so JSON Schema, count 3.0 as the integer 3; strict parsing would not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# After an integer's constraints: parsed strictly (`false` and `"3"` are not integers), but as
# JSON counts them (`3.0` is). Last, so that the constraints stay in its JSON schema.
WHOLE = BeforeValidator(_whole)


def _refuse(loc: Loc, kind: str, message: str, value: Any) -> ValidationError:
    error = InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)
    return ValidationError.from_exception_data("data", [error])


def within(prefix: str | int, exc: ValidationError) -> ValidationError:
    """``exc``'s errors as errors of the field ``prefix`` holds (their locations below it)."""
    errors: list[InitErrorDetails] = [
        InitErrorDetails(
            type=PydanticCustomError(e["type"], e["msg"]),
            loc=(prefix, *e["loc"]),
            input=e["input"],
        )
        for e in exc.errors()
    ]
    return ValidationError.from_exception_data(exc.title, errors)


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as JSON a browser and the store can hold: finite numbers, safe integers, at
    most ``MAX_EVENT_DATA_DEPTH`` levels and ``MAX_EVENT_DATA_BYTES`` bytes."""
    if _surely_within(data):  # most data: a few key/values, surely within every bound
        return data
    return check_exactly(data)


def check_exactly(data: dict[str, Any]) -> dict[str, Any]:
    """``check_data`` the long way: every value looked at, the JSON written and measured."""
    stack: list[tuple[Loc, Any, int]] = [((), data, 1)]
    while stack:
        loc, value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > C.MAX_EVENT_DATA_DEPTH:
                raise _refuse(
                    loc,
                    "too_deep",
                    f"nested deeper than {C.MAX_EVENT_DATA_DEPTH} levels",
                    "...",
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend((loc + (k,), v, depth + 1) for k, v in items)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, float) and not math.isfinite(value):
            raise _refuse(loc, "not_finite", "numbers must be finite", str(value))
        elif isinstance(value, int) and abs(value) > C.MAX_SAFE_INTEGER:
            raise _refuse(
                loc,
                "unsafe_integer",
                f"integers are at most {C.MAX_SAFE_INTEGER} in size (what a browser holds)",
                value,
            )
    size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode())
    if size > C.MAX_EVENT_DATA_BYTES:
        raise _refuse(
            (),
            "too_large",
            f"data is {size} bytes as JSON; at most {C.MAX_EVENT_DATA_BYTES}",
            "...",
        )
    return data


_FLOAT_CHARS = 24  # the longest repr of a finite float: -1.7976931348623157e+308
_SAFE_INT_CHARS = len(str(-C.MAX_SAFE_INTEGER))
_NOT_SURE = C.MAX_EVENT_DATA_BYTES + 1  # any bound over the cap: check_data looks closer


def _surely_within(data: dict[str, Any]) -> bool:
    """Whether ``data`` holds only values ``check_data`` accepts, nested no deeper than
    allowed, with a JSON size surely under the cap without writing it: every character counted
    as its longest escape (``\\uXXXX``, 6 bytes). Anything else takes the exact path."""
    return _size_bound(data, 1) <= C.MAX_EVENT_DATA_BYTES


def _size_bound(container: dict[str, Any] | list[Any], depth: int) -> int:
    """An upper bound of a dict's or a list's size as JSON, or more than the cap when
    ``check_data`` must look closer (a value it may refuse, nesting deeper than the cap, a
    bound over it). Scalars inline: most data is one flat dict, one call."""
    if depth > C.MAX_EVENT_DATA_DEPTH:
        return _NOT_SURE
    bound = 2  # {} or []
    values: Iterable[Any] = container
    if type(container) is dict:
        for key in container:
            if type(key) is not str:
                return _NOT_SURE
            bound += 6 * len(key) + 3  # "key":
        values = container.values()
    for value in values:
        kind = type(value)
        if kind is str:
            bound += 6 * len(value) + 3  # and a comma
        elif kind is int:
            if abs(value) > C.MAX_SAFE_INTEGER:
                return _NOT_SURE
            bound += _SAFE_INT_CHARS + 1
        elif kind is bool or value is None:
            bound += 6
        elif kind is float:
            if not math.isfinite(value):
                return _NOT_SURE
            bound += _FLOAT_CHARS + 1
        elif kind is dict or kind is list:
            bound += _size_bound(value, depth + 1) + 1
        else:
            return _NOT_SURE
        if bound > C.MAX_EVENT_DATA_BYTES:
            return _NOT_SURE
    return bound


class _SystemData(BaseModel):
    """The keys of a system event's data that the engine reads; other keys are kept."""

    model_config = ConfigDict(extra="allow")


class VisitStartedData(_SystemData):
    timezoneOffset: TimezoneOffset | None = None
    returning: bool = False
    userAgent: UserAgent = ""


class PageEnteredData(_SystemData):
    title: Title = ""
    referrer: UrlText = ""
    timezoneOffset: TimezoneOffset | None = None
    utm: dict[UtmKey, UtmValue] = Field(default_factory=dict)
    focused: bool = False


class FocusChangedData(_SystemData):
    focused: bool = False


SYSTEM_DATA: dict[str, type[_SystemData]] = {
    "VisitStarted": VisitStartedData,
    "PageEntered": PageEnteredData,
    "FocusChanged": FocusChangedData,
}


# A value inside data (depth 2; data itself is depth 1), in the OpenAPI document (api/openapi.py)
JSON_VALUE_REF = "#/components/schemas/JSONValueAtDepth2"
# ``data`` as documented, for a model whose own validator calls ``check_data`` (one call per
# event instead of two: monitoring.models.EventIn)
UncheckedJSONData = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "additionalProperties": {"$ref": JSON_VALUE_REF}}),
    Field(
        description=f"JSON of at most {C.MAX_EVENT_DATA_BYTES} bytes and "
        f"{C.MAX_EVENT_DATA_DEPTH} levels; numbers finite, integers within ±{C.MAX_SAFE_INTEGER}"
    ),
]
JSONData = Annotated[UncheckedJSONData, AfterValidator(check_data)]
