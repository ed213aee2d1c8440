"""An operator's first hour: the commands find what serve finds, the key is shown once,
notify tells a closed page from an open one, the console finds past visits."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import os
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.cli import banner, main
from engagement.settings import Settings, load_settings

from .conftest import AUTH, Factory, new_id, post_events

Client = TestClient[Any, Any]


def publish(page: str | None) -> list[dict[str, Any]]:
    return [{"page": page, "channel": "gpe.publish", "data": {"event": "Promo"}}]


async def test_notify_to_a_page_that_is_not_open_is_404_naming_page(
    client: Client, factory: Factory
):
    await post_events(client, factory.start())
    first_page = factory.page_id
    await post_events(client, factory.navigate(f"{factory.url}cart", "Cart"))
    url = client.app.router["notify"].url_for(visitID=factory.visit_id)
    unknown = new_id()

    r = await client.post(url, json=publish(factory.page_id) + publish(first_page), headers=AUTH)

    assert r.status == 404, await r.text()
    assert await r.json() == {
        "error": "not_found",
        "message": f"1.page: page {first_page} of visit {factory.visit_id} is not open "
        "(closed); omit page to reach every open page of the visit",
        "details": [{"field": "1.page", "message": "closed"}],
    }
    r = await client.post(url, json=publish(unknown), headers=AUTH)
    assert r.status == 404, await r.text()
    assert (await r.json())["details"] == [{"field": "0.page", "message": "unknown"}]
    for page in (factory.page_id, None):
        r = await client.post(url, json=publish(page), headers=AUTH)
        assert r.status == 200, await r.text()


# -- the commands find what serve finds --


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder outside the engine's, as the current folder; no ENGAGEMENT_* variables."""
    for name in [n for n in os.environ if n.startswith("ENGAGEMENT_")]:
        monkeypatch.delenv(name)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def deployed(tmp_path: Path) -> Path:
    """An engine's folder: a settings file with relative folders, started once."""
    folder = tmp_path / "srv"
    (folder / "rules").mkdir(parents=True)
    (folder / "rules" / "s.yaml").write_text(STRATEGY)
    (folder / "engagement.toml").write_text('data_dir = "state"\nstrategies_dir = "rules"\n')
    return folder


STRATEGY = """
strategies:
  - name: dwell
    when: {time_on_page_s: 30}
    offer: {invite: chat.html, media: chat}
"""


def test_api_key_outside_the_engine_folder_says_where_it_looked(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["api-key"]) == 2

    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"engagement: no API key: no api_keys in the settings and no {elsewhere}/data/api-key "
        f"(settings file {elsewhere}/engagement.toml (default, not there)). `engagement serve` "
        "writes one on its first start: run this where serve runs, or with the same --config, "
        "ENGAGEMENT_CONFIG or --data-dir.\n"
    )
    assert not (elsewhere / "data").exists()  # no new, wrong key


@pytest.mark.parametrize("how", ["--config", "ENGAGEMENT_CONFIG"])
def test_api_key_and_check_find_the_folders_of_the_settings_file(
    elsewhere: Path,
    deployed: Path,
    how: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
):
    config = deployed / "engagement.toml"
    key = load_settings(config).generate_api_key()  # serve's first start
    assert (deployed / "state" / "api-key").is_file()
    if how == "--config":
        args = ["--config", str(config)]
    else:
        args = []
        monkeypatch.setenv("ENGAGEMENT_CONFIG", str(config))

    assert main([*args, "api-key"]) == 0
    assert capsys.readouterr().out == f"{key}\n"
    assert main([*args, "check"]) == 0
    assert (
        capsys.readouterr().out == "OK: 1 strategies, 0 categories, 0 tracker events in 1 files.\n"
    )


def test_check_outside_the_engine_folder_says_where_it_looked(
    elsewhere: Path, capsys: pytest.CaptureFixture[str]
):
    assert main(["check"]) == 2

    assert capsys.readouterr().err == (
        f"engagement: no strategies folder at {elsewhere}/strategies (strategies_dir; "
        f"settings file {elsewhere}/engagement.toml (default, not there))\n"
    )


def test_the_banner_shows_the_key_once_when_generated_then_masked(tmp_path: Path):
    settings = Settings(data_dir=tmp_path / "data")
    key = settings.generate_api_key()
    assert key is not None

    first = banner(settings, key)
    later = banner(settings, settings.generate_api_key())
    configured = banner(Settings(data_dir=tmp_path, api_keys=["k" * 32]), None)

    assert f"  API key:     {key}  (new, in {tmp_path}/data/api-key: shown this once; " in first
    assert key not in later
    assert f"  API key:     {key[:4]}…  (in {tmp_path}/data/api-key; " in later
    assert "  API key:     kkkk…  (from the settings)" in configured


def test_the_banner_names_the_demo_site_only_when_it_is_served(tmp_path: Path):
    served = banner(Settings(data_dir=tmp_path, api_keys=["k" * 32]), None)
    off = banner(Settings(data_dir=tmp_path, api_keys=["k" * 32], demo=False), None)

    assert "  demo site:   http://localhost:9081/demo/\n" in served
    assert "demo site" not in off
    assert "  tracker:     http://localhost:9081/tracker.js\n" in off


# -- readiness --


async def test_ready_is_503_when_the_history_queue_passes_its_bound(
    aiohttp_client: Any, settings: Settings, factory: Factory
):
    from engagement.app import create_app

    slow = settings.model_copy(
        update={"history_flush_interval_s": 3600, "ready_max_history_queue": 2}
    )
    client: Client = await aiohttp_client(create_app(slow))
    await post_events(client, factory.start())  # a visit row and two events, not yet written

    r = await client.get(client.app.router["ready"].url_for())

    assert r.status == 503, await r.text()
    assert await r.json() == {
        "status": "not ready",
        "checks": {
            "history": "ok",
            "outbox": "ok",
            "historyWrites": "ok",
            "historyQueue": "3 rows waiting, more than 2",
            "callbackQueue": "ok",
        },
    }


# -- past visits in the console --

VISIT_LINK = re.compile(r'href="/console/visits/([0-9A-F]{32})"')


async def past_visits(client: Client, **query: str) -> tuple[int, str, list[str]]:
    url = client.app.router["console-past-visits"].url_for().with_query(query)
    r = await client.get(url, headers=AUTH)
    text = await r.text()
    return r.status, text, VISIT_LINK.findall(text)


async def next_millisecond() -> None:
    """Into another millisecond of the engine's clock: 2 ms later is never the same one."""
    await asyncio.sleep(0.002)


@pytest.fixture
async def three_visits(client: Client) -> list[Factory]:
    """Ada signed in (customer C-1), then came back; Bob browsed once. Oldest first."""
    ada, bob = Factory(), Factory()
    again = Factory()
    again.global_visit_id = ada.global_visit_id
    await post_events(client, ada.start())
    await post_events(client, [ada.event("SignIn", {"firstName": "Ada", "customerID": "C-1"})])
    for visitor in (again, bob):
        await next_millisecond()  # distinct start times: "newest first" is one order
        await post_events(client, visitor.start())
    return [ada, again, bob]


async def test_past_visits_are_listed_newest_first_and_open(
    client: Client, three_visits: list[Factory]
):
    ada, again, bob = three_visits

    status, text, ids = await past_visits(client)

    assert status == 200, text
    assert ids == [bob.visit_id, again.visit_id, ada.visit_id]
    r = await client.get(
        client.app.router["console-visit"].url_for(visitID=ada.visit_id), headers=AUTH
    )
    assert r.status == 200, await r.text()
    assert "Visit of Ada" in await r.text()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"visitID": "again"}, ["again"]),
        ({"globalVisitID": "ada"}, ["again", "ada"]),
        ({"identity": "C-1"}, ["ada"]),  # the identity the SignIn made
        ({"identity": "Ada"}, ["ada"]),  # what the visitor told the site
        ({"identity": "nobody"}, []),
        ({"from": "today", "until": "today"}, ["bob", "again", "ada"]),
        ({"from": "tomorrow"}, []),
        ({"until": "yesterday"}, []),
    ],
    ids=[
        "visitID",
        "globalVisitID",
        "identity-id",
        "identity-name",
        "no-identity",
        "today",
        "from-tomorrow",
        "until-yesterday",
    ],
)
async def test_past_visits_are_searched(
    client: Client, three_visits: list[Factory], query: dict[str, str], expected: list[str]
):
    by_name = dict(zip(("ada", "again", "bob"), three_visits, strict=True))
    today = dt.datetime.now(dt.UTC).date()
    days = {"today": today, "tomorrow": today + dt.timedelta(days=1),
            "yesterday": today - dt.timedelta(days=1)}  # fmt: skip
    ids = {"visitID": lambda f: f.visit_id, "globalVisitID": lambda f: f.global_visit_id}
    sent = {
        k: ids[k](by_name[v]) if k in ids else str(days[v]) if v in days else v
        for k, v in query.items()
    }

    status, text, found = await past_visits(client, **sent)

    assert status == 200, text
    assert found == [by_name[n].visit_id for n in expected]
    if not expected:
        assert "No visit matches." in text


async def test_past_visits_come_page_by_page(
    client: Client, three_visits: list[Factory], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("engagement.console.past.PAST_VISITS_PAGE", 2)
    ada, again, bob = three_visits
    status, text, first = await past_visits(client, globalVisitID="", identity="")
    assert (status, first) == (200, [bob.visit_id, again.visit_id]), text
    match = re.search(r'<a class="next" rel="next" href="([^"]+)"', text)
    assert match is not None, text

    r = await client.get(html.unescape(match.group(1)), headers=AUTH)

    text = await r.text()
    assert r.status == 200, text
    assert VISIT_LINK.findall(text) == [ada.visit_id]
    assert 'rel="next"' not in text


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ({"from": "2024-13-01"}, "from: Value error, '2024-13-01' is not a day of the calendar"),
        ({"visitID": "xyz"}, "visitID: String should match pattern '^([0-9A-Fa-f]{32})?$'"),
        ({"after": "1.2"}, "after: Value error, not a position in the list: start again from "
                           "the first page"),
    ],
    ids=["day", "visitID", "cursor"],
)  # fmt: skip
async def test_a_bad_search_is_told(client: Client, query: dict[str, str], error: str):
    status, text, _ = await past_visits(client, **query)

    assert status == 400
    assert error in html.unescape(text)


async def test_past_visits_need_a_session(client: Client):
    url = client.app.router["console-past-visits"].url_for()
    r = await client.get(url, allow_redirects=False)

    assert r.status == 303
