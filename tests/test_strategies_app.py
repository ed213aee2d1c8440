"""Strategies inside the running engine: categories on events, attempts, reload, the API."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import LIBRARY, LIFECYCLE
from engagement.api.strategies import StrategiesOut
from engagement.app import create_app
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings
from engagement.strategy.loader import check_folder

from .conftest import AUTH, SITE, ClientFactory, Factory, post_events, url

Client = TestClient[Any, Any]
INVITES = Path(__file__).resolve().parent.parent / "invites"
EXAMPLES = Path(__file__).resolve().parent.parent / "strategies"

BIG_CART = """
categories:
  products: ["/product"]
strategies:
  - name: big-cart
    priority: 10
    when:
      event: {name: AddToCart, where: {price: {gt: 500}}}
    offer: {invite: callback.html, media: callback, params: {service: sales}}
"""
DWELL = """
strategies:
  - name: pricing-dwell
    when:
      all:
        - url: /pricing
        - time_on_page_s: 30
    offer: {invite: chat.html, media: chat}
"""


@pytest.fixture
def strategies_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "big-cart.yaml").write_text(BIG_CART)
    (folder / "dwell.yaml").write_text(DWELL)
    return folder


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings, strategies_dir: Path) -> Client:
    settings = settings.model_copy(update={"strategies_dir": strategies_dir})
    return await aiohttp_client(create_app(settings))


async def visit(client: Client, factory: Factory) -> dict[str, Any]:
    r = await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    return await r.json()  # type: ignore[no-any-return]


def rewrite(path: Path, text: str) -> None:
    """Write and make sure the change is seen even within one mtime tick."""
    path.write_text(text)
    stamp = time.time_ns() + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


async def test_events_carry_their_page_categories(client: Client, factory: Factory):
    await post_events(client, factory.start(f"{SITE}/product/WH15", "Workhorse 15"))
    events = (await visit(client, factory))["events"]
    assert [e["category"] for e in events] == ["products", "products"]


async def test_business_event_creates_an_attempt(client: Client, factory: Factory):
    await post_events(client, factory.start())
    await post_events(client, [factory.event("AddToCart", {"sku": "PK11", "price": 329})])
    assert (await visit(client, factory))["attempts"] == []

    await post_events(client, [factory.event("AddToCart", {"sku": "WH15", "price": 1199})])
    attempts = (await visit(client, factory))["attempts"]
    assert len(attempts) == 1
    attempt = attempts[0]
    assert attempt["strategy"] == "big-cart"
    assert attempt["state"] == "offered"  # pushed to the visitor's pages at once
    assert attempt["media"] == "callback"
    assert attempt["params"] == {"service": "sales"}
    assert attempt["pageID"] == factory.page_id
    assert attempt["origin"] == "strategy"

    # Strict mode and per_visit: one attempt, however many big carts follow.
    await post_events(client, [factory.event("AddToCart", {"sku": "WH15", "price": 1199})])
    assert len((await visit(client, factory))["attempts"]) == 1


async def test_dwell_fires_from_the_timer_with_no_new_event(client: Client, factory: Factory):
    lifecycle = client.app[LIFECYCLE]
    await post_events(client, factory.start(f"{SITE}/pricing", "Pricing"))
    lifecycle.tick(now_ms() + 10_000)
    assert (await visit(client, factory))["attempts"] == []
    lifecycle.tick(now_ms() + 31_000)
    attempts = (await visit(client, factory))["attempts"]
    assert [a["strategy"] for a in attempts] == ["pricing-dwell"]


async def test_leaving_before_the_dwell_means_no_attempt(client: Client, factory: Factory):
    lifecycle = client.app[LIFECYCLE]
    await post_events(client, factory.start(f"{SITE}/pricing", "Pricing"))
    await post_events(client, factory.navigate(f"{SITE}/", "Home"))
    lifecycle.tick(now_ms() + 31_000)
    assert (await visit(client, factory))["attempts"] == []


async def test_attempt_not_shown_in_time_expires(client: Client, factory: Factory):
    lifecycle = client.app[LIFECYCLE]
    await post_events(client, factory.start())
    await post_events(client, [factory.event("AddToCart", {"price": 900})])
    lifecycle.tick(now_ms() + 31_000)
    (attempt,) = (await visit(client, factory))["attempts"]
    assert attempt["state"] == "timed_out"
    assert [t["state"] for t in attempt["transitions"]] == ["detected", "offered", "timed_out"]
    assert attempt["transitions"][2]["reason"] == "no answer while offered"


async def test_strategies_api_lists_strategies_and_errors(client: Client):
    r = await client.get(url(client, "strategies"), headers=AUTH)
    assert r.status == 200, await r.text()
    body = await r.json()
    StrategiesOut.model_validate(body)
    assert [s["name"] for s in body["strategies"]] == ["big-cart", "pricing-dwell"]
    assert body["strategies"][0]["triggers"] == ["event:AddToCart"]
    assert body["categories"] == {"products": ["/product"]}
    assert body["errors"] == []
    assert (await client.get(url(client, "strategies"))).status == 401


async def test_reload_valid_broken_then_fixed(client: Client, strategies_dir: Path):
    library = client.app[LIBRARY]
    path = strategies_dir / "dwell.yaml"

    rewrite(path, DWELL.replace("pricing-dwell", "pricing-dwell-v2"))
    assert library.scan() is True
    assert [s.name for s in library.current.strategies] == ["big-cart", "pricing-dwell-v2"]

    rewrite(path, DWELL.replace("time_on_page_s: 30", "time_on_pag_s: 30"))
    library.scan()
    body = await (await client.get(url(client, "strategies"), headers=AUTH)).json()
    assert body["errors"] == [
        {
            "file": "strategies/dwell.yaml",
            "line": 7,
            "column": 11,
            "message": "unknown key 'time_on_pag_s': did you mean 'time_on_page_s'?",
        }
    ]
    # The last good version keeps running.
    assert [s["name"] for s in body["strategies"]] == ["big-cart", "pricing-dwell-v2"]

    rewrite(path, DWELL)
    library.scan()
    body = await (await client.get(url(client, "strategies"), headers=AUTH)).json()
    assert body["errors"] == []
    assert [s["name"] for s in body["strategies"]] == ["big-cart", "pricing-dwell"]


async def test_reload_happens_by_itself(client: Client, strategies_dir: Path):
    """The watcher picks an edit up with no call from us (the budget is 2 s)."""
    import asyncio

    library = client.app[LIBRARY]
    rewrite(strategies_dir / "dwell.yaml", DWELL.replace("pricing-dwell", "renamed"))
    for _ in range(40):
        if "renamed" in library.current.by_name:
            break
        await asyncio.sleep(0.1)
    assert "renamed" in library.current.by_name


async def test_declared_events_reach_the_tracker(client: Client, strategies_dir: Path):
    library = client.app[LIBRARY]
    before = (await client.get(url(client, "tracker"))).headers["ETag"]
    rewrite(
        strategies_dir / "events.yaml",
        "events:\n  - name: BuyClicked\n    trigger: click\n    selector: '#buy'\n",
    )
    library.scan()
    r = await client.get(url(client, "tracker"))
    assert r.headers["ETag"] != before
    assert '{"name":"BuyClicked","trigger":"click","selector":"#buy"' in await r.text()


async def test_availability_feed(client: Client):
    body = {"agentsReady": 2, "estimatedWaitS": 40}
    r = await client.put(url(client, "availability-group", group="sales"), json=body, headers=AUTH)
    assert r.status == 200, await r.text()
    group = (await r.json())["groups"]["sales"]
    assert (group["agentsReady"], group["estimatedWaitS"]) == (2, 40)
    r = await client.put(
        url(client, "availability-group", group="sales"), json={"agentsReady": -1}, headers=AUTH
    )
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "agentsReady"
    r = await client.put(url(client, "availability-group", group="sales"), json={"agentsReady": 1})
    assert r.status == 401


def test_shipped_examples_are_valid():
    from engagement.strategy.loader import check_folder

    strategies, errors = check_folder(EXAMPLES)
    assert errors == []
    assert len(strategies) >= 4


async def test_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from engagement.cli import main

    folder = tmp_path / "strategies"
    shutil.copytree(EXAMPLES, folder)
    assert main(["check", str(folder)]) == 0
    assert capsys.readouterr().out.startswith("OK: 4 strategies, 4 categories")
    text = (folder / "big-cart.yaml").read_text().replace("price: {gt: 500}", "price: {gt 500}")
    (folder / "big-cart.yaml").write_text(text.replace("media: callback", "media: fax"))
    assert main(["check", str(folder)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("strategies/big-cart.yaml:")
    assert any("media" in line and "'chat', 'callback' or 'custom'" in line for line in out)
    assert out[-1].startswith("2 errors: fix them")


PYTHON_STRATEGY = '''
from engagement.strategy.schema import Offer


class VipOnPricing:
    """Gold customers on the pricing page, at once."""

    name = "vip-pricing"
    priority = 90
    triggers = frozenset({"page", "identity"})
    offer = Offer(invite="chat.html", media="chat", params={"queue": "vip"})

    def evaluate(self, visit, now_ms):
        page = visit.current_page
        if page is None or "/pricing" not in page.url:
            return False
        return visit.user_info.get("tier") == "gold"


strategies = [VipOnPricing()]
'''


async def test_python_strategy_next_to_the_files(client: Client, strategies_dir: Path,
                                                 factory: Factory):  # fmt: skip
    rewrite(strategies_dir / "vip.py", PYTHON_STRATEGY)
    client.app[LIBRARY].scan()
    await post_events(client, factory.start(f"{SITE}/pricing", "Pricing"))
    assert (await visit(client, factory))["attempts"] == []
    await post_events(client, [factory.event("UserInfo", {"tier": "gold"})])
    (attempt,) = (await visit(client, factory))["attempts"]
    assert (attempt["strategy"], attempt["params"]) == ("vip-pricing", {"queue": "vip"})


async def test_python_strategy_error_names_file_and_line(client: Client, strategies_dir: Path):
    rewrite(strategies_dir / "broken.py", "x = 1\nstrategies = [undefined_name]\n")
    client.app[LIBRARY].scan()
    body = await (await client.get(url(client, "strategies"), headers=AUTH)).json()
    assert body["errors"] == [
        {
            "file": "strategies/broken.py",
            "line": 2,
            "column": 1,
            "message": "NameError: name 'undefined_name' is not defined",
        }
    ]


async def test_an_offer_naming_no_template_is_refused_with_a_hint(
    client: Client, strategies_dir: Path
):
    library = client.app[LIBRARY]
    rewrite(strategies_dir / "dwell.yaml", DWELL.replace("chat.html", "chatt.html"))
    library.scan()
    body = await (await client.get(url(client, "strategies"), headers=AUTH)).json()
    assert body["errors"] == [
        {
            "file": "strategies/dwell.yaml",
            "line": 3,
            "column": 1,
            "message": "offer.invite: no template 'chatt.html' in invites/: "
            "did you mean 'chat.html'?",
        }
    ]
    # engagement check says the same, with the settings' invites folder.
    _, errors = check_folder(strategies_dir, INVITES)
    assert [str(e) for e in errors] == [
        "strategies/dwell.yaml:3:1: offer.invite: no template 'chatt.html' in invites/: "
        "did you mean 'chat.html'?"
    ]


@pytest.mark.parametrize(
    ("invite", "status"),  # not a file name: 400; no such template: 404
    [("../pyproject.toml", 400), ("missing.html", 404), ("/etc/passwd", 400)],
)
async def test_engage_names_only_a_template_in_invites(client: Client, invite: str, status: int):
    factory = Factory()
    await post_events(client, factory.start())
    body = {"ixnProfile": {"visitID": factory.visit_id, "invite": invite, "media": "chat"}}
    r = await client.post(client.app.router["engage"].url_for(), json=body, headers=AUTH)
    assert r.status == status, await r.text()
    assert [d["field"] for d in (await r.json())["details"]] == ["ixnProfile.invite"]
    visit = await (
        await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    ).json()
    assert visit["attempts"] == []


async def test_engage_naming_no_template_says_so_even_when_the_visit_is_busy(client: Client):
    factory = Factory()
    await post_events(client, factory.start())
    engage = client.app.router["engage"].url_for()
    profile = {"visitID": factory.visit_id, "invite": "chat.html", "media": "chat"}
    r = await client.post(engage, json={"ixnProfile": profile}, headers=AUTH)
    assert r.status == 200, await r.text()
    r = await client.post(
        engage, json={"ixnProfile": {**profile, "invite": "chatt.html"}}, headers=AUTH
    )
    assert r.status == 404, await r.text()
    assert (await r.json())["details"] == [{"field": "ixnProfile.invite", "message": "unknown"}]


async def test_a_template_removed_from_invites_is_reported_by_the_hot_reload(
    client: Client, strategies_dir: Path, tmp_path: Path
):
    """The strategies did not change, the invites/ folder did: the reload says which offers
    now name no template, and stops saying it once the template is back."""
    invites = tmp_path / "invites"
    shutil.copytree(INVITES, invites)
    library = client.app[LIBRARY]
    library.invites = invites
    library.scan()
    assert library.all_errors() == []

    (invites / "chat.html").rename(invites / "chat-v2.html")
    assert library.scan() is True
    body = await (await client.get(url(client, "strategies"), headers=AUTH)).json()
    assert [e["message"] for e in body["errors"]] == [
        "offer.invite: no template 'chat.html' in invites/: did you mean 'chat-v2.html'?"
    ]
    assert library.scan() is False  # nothing changed since

    (invites / "chat-v2.html").rename(invites / "chat.html")
    assert library.scan() is True
    assert library.all_errors() == []
    assert [s.name for s in library.current.strategies] == ["big-cart", "pricing-dwell"]
