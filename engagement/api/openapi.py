"""The OpenAPI 3.1 document, built from the route table and the pydantic models.

It says what the server really accepts and answers, so that a client generated from it (and
schemathesis, tests/test_fuzz_openapi.py) meets no surprise: every parameter's format and
whether it is required, each body's content types, the security a route takes, and every
status it can answer.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import __version__
from .. import constants as C
from ..monitoring.bounds import JSON_VALUE_REF

if TYPE_CHECKING:
    from .route import Route

PATH_PATTERNS = {"group": "^[A-Za-z0-9][A-Za-z0-9_.-]*$", "identityId": "^[^/]{1,200}$"}
ID_FORMAT = "^[0-9A-F]{32}$"  # visitID, pageID, attemptID...: 32 upper-case hex characters
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message", "details"],
    "properties": {
        "error": {"type": "string", "description": "stable code, e.g. invalid_input"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
THROTTLED_ROUTES = frozenset({"callbacks", "chats"})  # rate-limited: see api/throttling.py
# navigator.sendBeacon posts text/plain: the routes that read it (parsing.BEACON_TYPES)
BEACON_ROUTES = frozenset(
    {"events", "visitor-id", "link-issue", "link-redeem", "chat-session-save", "chat-session-load"}
)
SECURITY_SCHEMES = {
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key"},
    "basic": {"type": "http", "scheme": "basic", "description": "basic_auth_users"},
    "siteOrigin": {
        "type": "apiKey",
        "in": "header",
        "name": "Origin",
        "description": "browsers: the page's origin, one of allowed_origins (or Referer)",
    },
}
KEY_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}, {"basic": []}]


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    models = {m for r in routes for m in (r.body, r.response, r.query, r.headers) if m is not None}
    refs, defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    schemas = defs.get("$defs", {})

    def fields(model: type[BaseModel]) -> tuple[dict[str, Any], list[str]]:
        schema = schemas[refs[(model, "validation")]["$ref"].rsplit("/", 1)[1]]
        return schema.get("properties", {}), schema.get("required", [])

    paths: dict[str, Any] = {}
    for route in routes:
        if route.method == "OPTIONS":
            continue
        op = _operation(route, refs, fields)
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "engagement",
            "version": __version__,
            "description": "Web engagement engine; GWE-compatible paths are under /server/data/.",
        },
        "paths": paths,
        "components": {
            "schemas": {**schemas, "Error": ERROR_SCHEMA, **_json_values()},
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


Fields = Callable[[type[BaseModel]], tuple[dict[str, Any], list[str]]]


def _operation(route: Route, refs: dict[Any, Any], fields: Fields) -> dict[str, Any]:
    doc = (route.handler.__doc__ or route.name).strip()
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": doc.splitlines()[0],
        "tags": [route.tag],
        "responses": {},
    }
    params = [
        {"name": p, "in": "path", "required": True,
         "schema": {"type": "string", "pattern": PATH_PATTERNS.get(p, ID_FORMAT)}}
        for p in re.findall(r"{(\w+)}", route.path)
    ]  # fmt: skip
    for where, model in (("query", route.query), ("header", route.headers)):
        if model is None:
            continue
        properties, required = fields(model)
        for name, prop in properties.items():
            param: dict[str, Any] = {"name": name, "in": where, "required": name in required}
            if "description" in prop:
                param["description"] = prop["description"]
            param["schema"] = _present(prop)
            params.append(param)
    if params:
        op["parameters"] = params
    responses = op["responses"]
    ok: dict[str, Any] = {"description": "OK" if route.statuses == (200,) else "the answer"}
    if route.response is not None:
        ok["content"] = {route.content: {"schema": refs[(route.response, "validation")]}}
    elif route.content != "application/json":
        ok["content"] = {route.content: {}}
    for status in route.statuses:
        responses[str(status)] = ok

    def error(status: int, description: str) -> None:
        ref = {"$ref": "#/components/schemas/Error"}
        responses[str(status)] = {"description": description,
                                  "content": {"application/json": {"schema": ref}}}  # fmt: skip

    if route.body is not None:
        ref = refs[(route.body, "validation")]
        types = (
            ["application/json", "text/plain"]
            if route.name in BEACON_ROUTES
            else ["application/json"]
        )
        op["requestBody"] = {"required": True, "content": {t: {"schema": ref} for t in types}}
        error(413, "body larger than max_body_bytes")
        error(415, f"Content-Type is not {' or '.join(types)}")
    if route.body or route.query or route.headers or "{" in route.path:
        error(400, "invalid input; `details` names the field")
    if "{" in route.path:
        error(404, "unknown ID")
    security: list[dict[str, list[str]]] = []
    if route.browser:
        security.append({"siteOrigin": []})
        error(403, "Origin (or Referer) is not an allowed site")
    if route.auth:
        security += KEY_SECURITY
        op["x-role"] = route.role.value  # the least role a key needs
        error(401, "missing or wrong API key")
        error(403, f"the key's role is below {route.role.value}"
              + (", or Origin is not an allowed site" if route.browser else ""))  # fmt: skip
        error(429, "too many wrong keys from this address: retry after `Retry-After` seconds")
    if security:
        op["security"] = security
    if route.name in THROTTLED_ROUTES:
        error(429, "a limit (per phone number, visitor, address or overall) is reached: retry "
              "after `Retry-After` seconds; `message` is for the visitor")  # fmt: skip
    for status, description in route.answers:
        error(status, description)
    return op


def _json_values() -> dict[str, Any]:
    """Event data's values, one schema per depth down to MAX_EVENT_DATA_DEPTH (then scalars
    only): what monitoring.bounds.check_data takes, but for the 16 KB, which no schema says.
    Integers within what a browser holds exactly (a float such as 1.5e300 is taken too, but
    JSON Schema counts it an integer)."""
    scalars = [
        {"type": ["string", "boolean", "null"]},
        {"type": "number", "minimum": -C.MAX_SAFE_INTEGER, "maximum": C.MAX_SAFE_INTEGER},
    ]
    values: dict[str, Any] = {}
    deepest = C.MAX_EVENT_DATA_DEPTH + 1
    for depth in range(2, deepest + 1):
        if depth == deepest:
            values[f"JSONValueAtDepth{depth}"] = {"anyOf": scalars}
            continue
        inner = {"$ref": f"#/components/schemas/JSONValueAtDepth{depth + 1}"}
        containers = [
            {"type": "array", "items": inner},
            {"type": "object", "additionalProperties": inner},
        ]
        values[f"JSONValueAtDepth{depth}"] = {"anyOf": scalars + containers}
    assert JSON_VALUE_REF.endswith("/JSONValueAtDepth2")
    return values


def _present(schema: dict[str, Any]) -> dict[str, Any]:
    """A query or header parameter's schema: absent, not null, when it has no value."""
    schema = copy.deepcopy(schema)
    for key in ("title", "description", "default"):
        schema.pop(key, None)
    options = schema.get("anyOf")
    if options is not None:
        kept = [o for o in options if o.get("type") != "null"]
        del schema["anyOf"]
        if len(kept) == 1:
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    return schema
