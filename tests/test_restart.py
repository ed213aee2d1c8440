"""A restart is invisible to visitors: live visits, the push buffers and page strategies come
back from what was written, after a graceful stop and after a stop that wrote nothing more."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, HUB, LIFECYCLE, REGISTRY
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings

from .conftest import AUTH, SITE, ClientFactory, Factory, post_events
from .test_notifications import Stream

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]
DWELL = """
strategies:
  - name: pricing-dwell
    when:
      all:
        - url: /pricing
        - time_on_page_s: 30
    offer: {invite: chat.html, media: chat}
"""
INVITES = Path(__file__).resolve().parent.parent / "invites"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "dwell.yaml").write_text(DWELL)
    return settings.model_copy(update={"strategies_dir": folder, "invites_dir": INVITES})


async def browse(client: Client, factory: Factory) -> None:
    """A visitor who came by the home page, signed in, put things in the cart and is reading
    the pricing page."""
    events = factory.start(f"{SITE}/", "Home")
    events[1]["category"] = "home"
    await post_events(client, events)
    await post_events(client, [factory.event("SignIn", {"firstName": "Ada", "customerID": "C1"})])
    await post_events(client, [factory.event("AddToCart", {"price": 10}) for _ in range(3)])
    pricing = factory.navigate(f"{SITE}/pricing", "Pricing")
    pricing[1]["category"] = "pricing"
    await post_events(client, pricing)


def state_of(client: Client, visit_id: str) -> dict[str, Any]:
    visit = client.app[REGISTRY].get(visit_id)
    assert visit is not None, "the visit is not live"
    page = visit.current_page
    assert page is not None
    return {
        "started_at": visit.started_at,
        "identity": visit.identity.value,
        "user_info": visit.user_info,
        "pages": [(p.url, p.title, p.entered_at, p.exited_at) for p in visit.pages.values()],
        "pages_viewed": visit.pages_viewed,
        "current": (page.page_id, page.title),
        "categories": dict(visit.category_pages),
        "sequence": list(visit.category_sequence),
        "events": [(e.event_name, e.event_id) for e in visit.events],
        "language": visit.language_code,
        "user_agent": visit.user_agent,
    }


async def notify(client: Client, factory: Factory, text: str) -> None:
    url = client.app.router["notify"].url_for(visitID=factory.visit_id)
    body = [{"page": factory.page_id, "channel": "gpe.publish", "data": {"event": text}}]
    r = await client.post(url, json=body, headers=AUTH)
    assert r.status == 200, await r.text()


async def open_stream(client: Client, factory: Factory, last_event_id: int) -> Stream:
    url = (
        client.app.router["stream"]
        .url_for()
        .with_query(visitID=factory.visit_id, pageID=factory.page_id)
    )
    headers = {"Origin": SITE, "Last-Event-ID": str(last_event_id)}
    r = await client.get(url, headers=headers)
    assert r.status == 200, await r.text()
    return Stream(r)


async def test_after_a_graceful_restart_visits_and_push_buffers_are_back(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    client = await aiohttp_client(create_app(settings))
    await browse(client, factory)
    before = state_of(client, factory.visit_id)
    stream = await open_stream(client, factory, 0)
    await notify(client, factory, "seen")
    seen = await stream.frame()
    stream.response.close()  # the page loses its stream ...
    await notify(client, factory, "missed")  # ... and misses this one
    await client.close()  # graceful: what is queued is written

    client = await aiohttp_client(create_app(settings))
    assert state_of(client, factory.visit_id) == before
    # The page reconnects with the last id it handled: it gets what it missed, then what comes.
    stream = await open_stream(client, factory, seen["id"])
    missed = await stream.frame()
    assert (missed["channel"], missed["data"]) == ("gpe.publish", {"event": "missed"})
    await notify(client, factory, "after the restart")  # no event from the page needed
    after = await stream.frame()
    assert after["data"] == {"event": "after the restart"}
    assert after["id"] > missed["id"] > seen["id"]
    url = client.app.router["live-visits"].url_for()
    body = await (await client.get(url, headers=AUTH)).json()
    assert [(v["visitID"], v["pagesViewed"]) for v in body["visits"]] == [(factory.visit_id, 2)]


async def test_a_dwell_goes_on_counting_across_a_restart(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    client = await aiohttp_client(create_app(settings))
    await browse(client, factory)
    entered = client.app[REGISTRY].get(factory.visit_id).current_page.entered_at
    await client.close()

    client = await aiohttp_client(create_app(settings))
    lifecycle = client.app[LIFECYCLE]
    lifecycle.tick(entered + 29_000)
    assert client.app[REGISTRY].get(factory.visit_id).attempts == []
    lifecycle.tick(entered + 30_000)
    [attempt] = client.app[REGISTRY].get(factory.visit_id).attempts
    assert (attempt.strategy, attempt.state.value) == ("pricing-dwell", "offered")
    await client.close()

    # Once invited, another restart does not invite again (per_visit), and the unanswered
    # invitation still times out.
    client = await aiohttp_client(create_app(settings))
    [restored] = client.app[REGISTRY].get(factory.visit_id).attempts
    assert restored.attempt_id == attempt.attempt_id
    client.app[LIFECYCLE].tick(now_ms() + 61_000)
    assert restored.state.value == "timed_out"


async def test_without_the_final_flush_what_was_written_comes_back(
    aiohttp_client: ClientFactory, settings: Settings, factory: Factory
):
    client = await aiohttp_client(create_app(settings))
    await browse(client, factory)
    await notify(client, factory, "written")
    history = client.app[HISTORY]
    deadline = asyncio.get_running_loop().time() + 10
    while history.pending:  # the writer's own batches, every 50 ms here
        assert asyncio.get_running_loop().time() < deadline, "history never written"
        await asyncio.sleep(0.02)
    before = state_of(client, factory.visit_id)
    # A crash: nothing more is written (no final flush, the writer stops where it is).
    history.flush = _nothing  # type: ignore[method-assign]
    await post_events(client, [factory.event("AddToCart", {"price": 1})])  # lost in the crash
    await client.close()

    client = await aiohttp_client(create_app(settings))
    assert state_of(client, factory.visit_id) == before
    hub = client.app[HUB]
    stream = hub.connect(factory.visit_id, factory.page_id, 0, now_ms())
    frame = stream.waiting()[0]
    assert b'"event":"written"' in frame


async def _nothing(final: bool = False) -> None:
    return None


async def test_closed_and_long_idle_visits_stay_closed(
    aiohttp_client: ClientFactory, settings: Settings
):
    # Written at the stop only: a row written before the test moves `gone` back in time would
    # keep the later last_seen_at (rows merge forwards).
    settings = settings.model_copy(update={"visit_timeout_s": 60, "history_flush_interval_s": 3600})
    client = await aiohttp_client(create_app(settings))
    gone, idle, live = Factory(), Factory(), Factory()
    for visitor in (gone, idle, live):
        await post_events(client, visitor.start())
    registry = client.app[REGISTRY]
    registry.get(idle.visit_id).last_seen_at -= 61_000
    registry.close_idle(now_ms())  # closes `idle`
    registry.get(gone.visit_id).last_seen_at -= 61_000  # seen too long ago, never closed
    client.app[HISTORY].record(registry.get(gone.visit_id), [])
    await client.close()

    client = await aiohttp_client(create_app(settings))
    assert [v.visit_id for v in client.app[REGISTRY]] == [live.visit_id]
