"""An operator's first hour: the commands find what serve finds, the key is shown once,
notify tells a closed page from an open one, the console finds past visits."""

from __future__ import annotations

import os
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
