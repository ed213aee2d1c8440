"""The OpenAPI 3.1 document, built from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from pydantic.json_schema import models_json_schema

from .. import __version__

if TYPE_CHECKING:
    from .route import Route

PATH_PATTERNS = {"group": "^[A-Za-z0-9][A-Za-z0-9_.-]*$", "identityId": "^[^/]{1,200}$"}
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


def build_openapi(routes: list[Route]) -> dict[str, Any]:
    models = {m for r in routes for m in (r.body, r.response) if m is not None}
    refs, defs = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, Any] = {}
    for route in routes:
        if route.method == "OPTIONS":
            continue
        doc = (route.handler.__doc__ or route.name).strip()
        op: dict[str, Any] = {
            "operationId": route.name,
            "summary": doc.splitlines()[0],
            "tags": [route.tag],
            "responses": {},
        }
        params = [
            {"name": p, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": PATH_PATTERNS.get(p, "^[0-9A-F]{32}$")}}
            for p in re.findall(r"{(\w+)}", route.path)
        ]  # fmt: skip
        if route.query is not None:
            schema = route.query.model_json_schema()
            for name, prop in schema.get("properties", {}).items():
                params.append({"name": name, "in": "query", "schema": prop})
        if route.headers is not None:
            schema = route.headers.model_json_schema(by_alias=True)
            for name, prop in schema.get("properties", {}).items():
                params.append({"name": name, "in": "header", "schema": prop})
        if params:
            op["parameters"] = params
        if route.body is not None:
            ref = refs[(route.body, "validation")]
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref}, "text/plain": {"schema": ref}},
            }
        ok: dict[str, Any] = {"description": "OK"}
        if route.response is not None:
            ok["content"] = {route.content: {"schema": refs[(route.response, "validation")]}}
        elif route.content != "application/json":
            ok["content"] = {route.content: {}}
        op["responses"]["200"] = ok
        error = {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        }
        if route.body or route.query or route.headers or "{" in route.path:
            op["responses"]["400"] = {
                "description": "invalid input; `details` names the field",
                **error,
            }
        if route.auth:
            op["security"] = [{"apiKey": []}, {"bearer": []}, {"basic": []}]
            op["responses"]["401"] = {"description": "missing or wrong API key", **error}
            op["responses"]["429"] = {
                "description": "too many wrong keys from this address: retry after "
                "`Retry-After` seconds",
                **error,
            }
            op["x-role"] = route.role.value  # the least role a key needs
            op["responses"]["403"] = {
                "description": f"the key's role is below {route.role.value}",
                **error,
            }
        if route.browser:
            op["responses"]["403"] = {
                "description": "Origin is not an allowed site"
                + (f", or the key's role is below {route.role.value}" if route.auth else ""),
                **error,
            }
            op["responses"]["413"] = {"description": "body too large", **error}
        if "{" in route.path:
            op["responses"]["404"] = {"description": "unknown ID", **error}
        if route.name in THROTTLED_ROUTES:
            op["responses"]["429"] = {
                "description": "a limit (per phone number, visitor, address or overall) is "
                "reached: retry after `Retry-After` seconds; `message` is for the visitor",
                **error,
            }
        for status, description in route.answers:
            op["responses"][str(status)] = {"description": description, **error}
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
            "schemas": {**defs.get("$defs", {}), "Error": ERROR_SCHEMA},
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
                "basic": {"type": "http", "scheme": "basic", "description": "basic_auth_users"},
            },
        },
    }
