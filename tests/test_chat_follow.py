"""Every page of a visit with a live chat learns it from its stream's first frame, and reports
what Widgets does with the chat there (restored, ended...), over real HTTP."""

from __future__ import annotations

import json
from typing import Any

from . import test_notifications as notifications
from .conftest import AUTH, SITE, Factory, post_events, url
from .test_notifications import Client, disposition, invited, open_stream

settings = notifications.settings  # the big-cart chat strategy and the shipped invites
HANDLED_ALL = 2**53 - 1  # a replay point past every message (the largest allowed): no replay


def engaged(raw: bytes) -> dict[str, Any]:
    assert raw.startswith(b"event: message\ndata: "), raw
    frame: dict[str, Any] = json.loads(raw.split(b"data: ", 1)[1])
    return frame


async def states(client: Client, factory: Factory) -> list[tuple[str, str]]:
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    (attempt,) = visit["attempts"]
    return [(t["state"], t["reason"]) for t in attempt["transitions"]]


async def test_a_new_page_of_a_visit_with_a_live_chat_is_told_to_follow_it(
    client: Client, factory: Factory
):
    _, invite = await invited(client, factory)
    attempt_id = invite["attemptID"]
    assert (await disposition(client, factory, attempt_id, "accepted")).status == 200

    await post_events(client, factory.navigate(f"{SITE}/pricing", "Pricing"))
    stream = await open_stream(client, factory)
    assert await stream.raw() == b"retry: 2000\n\n"
    assert engaged(await stream.raw()) == {
        "id": 0,
        "channel": "gpe.engaged",
        "data": {"attemptID": attempt_id, "media": "chat", "state": "accepted"},
    }

    for code in ("restored", "agent_connected", "restored", "completed"):
        r = await disposition(client, factory, attempt_id, code)
        assert r.status == 200, await r.text()
    r = await disposition(client, factory, attempt_id, "restored")  # a late one: nothing to do
    assert await r.json() == {"attemptID": attempt_id, "state": "completed"}

    await post_events(client, factory.navigate(f"{SITE}/cart", "Cart"))
    stream = await open_stream(client, factory, since=HANDLED_ALL)
    assert await stream.raw() == b"retry: 2000\n\n"
    assert await stream.raw() == b": ping\n\n"  # no chat to follow any more
    assert [s for s, _ in await states(client, factory)][-3:] == [
        "accepted",
        "launched",
        "completed",
    ]
