"""A small GMS for the demo: the engine's callbacks and chats land here when no real GMS is
configured, so a newcomer sees the whole loop. It answers as GMS does and keeps what it got."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from .parsing import read_form
from .policy import add_routes
from .route import Policy, Route

DEMO_GMS: web.AppKey[list[dict[str, Any]]] = web.AppKey("demo_gms", list)


async def callback(request: web.Request) -> web.StreamResponse:
    """GMS callback: 400 without _customer_number, else 200 with an _id."""
    form = dict(await read_form(request))
    if not form.get("_customer_number"):
        return web.json_response(
            {"message": "_customer_number is mandatory", "exception": "BadRequest"}, status=400
        )
    gms_id = uuid.uuid4().hex
    request.app[DEMO_GMS].append(
        {"kind": "callback", "service": request.match_info["service"], "form": form, "_id": gms_id}
    )
    return web.json_response({"_id": gms_id})


async def request_chat(request: web.Request) -> web.StreamResponse:
    """GMS request-chat: the chat is reserved; the chat page starts it at the create URL, a
    REST path of GMS's Chat API v1 under the same base."""
    form = dict(await read_form(request))
    gms_id = uuid.uuid4().hex
    request.app[DEMO_GMS].append({"kind": "chat", "form": form, "_id": gms_id})
    return web.json_response(
        {"_chatIxnAPI-CREATE-URL": f"/genesys/1/service/{gms_id}/ixn/chat", "_id": gms_id}
    )


async def chat_ixn(request: web.Request) -> web.StreamResponse:
    """Chat API v1, the part the demo chat page uses: start the chat, and end it."""
    gms_id, action = request.match_info["id"], request.match_info.get("action", "create")
    received: list[dict[str, Any]] = request.app[DEMO_GMS]
    if not any(r["kind"] == "chat" and r["_id"] == gms_id for r in received):
        return web.json_response({"message": f"no chat {gms_id}", "statusCode": 2}, status=404)
    form = dict(await read_form(request))
    received.append({"kind": f"chat-{action}", "form": form, "_id": gms_id})
    return web.json_response({"chatId": gms_id, "statusCode": 0})


async def requests(request: web.Request) -> web.StreamResponse:
    """What the demo GMS received, newest first (open it in a browser after a callback)."""
    received: list[dict[str, Any]] = request.app[DEMO_GMS]
    return web.json_response({"requests": received[::-1]})


BASE = "/demo/gms/genesys/1/service"
# Public, as a GMS on a private network would be to the engine; only served with `demo` on.
DEMO_GMS_ROUTES = [
    Route("POST", f"{BASE}/callback/{{service}}", callback, "demo-gms-callback", "demo",
          policy=Policy.PUBLIC),
    Route("POST", f"{BASE}/request-chat", request_chat, "demo-gms-chat", "demo",
          policy=Policy.PUBLIC),
    Route("POST", f"{BASE}/{{id}}/ixn/chat", chat_ixn, "demo-gms-chat-create", "demo",
          policy=Policy.PUBLIC),
    Route("POST", f"{BASE}/{{id}}/ixn/chat/{{action:disconnect}}", chat_ixn,
          "demo-gms-chat-disconnect", "demo", policy=Policy.PUBLIC),
    Route("GET", "/demo/gms/requests", requests, "demo-gms-requests", "demo",
          policy=Policy.PUBLIC),
]  # fmt: skip


def setup_demo_gms(app: web.Application) -> None:
    app[DEMO_GMS] = []
    add_routes(app, DEMO_GMS_ROUTES)
