"""The dry run: live traffic through the app, then the same folder replayed from the history
decides the same; a draft folder's differences are counted against the live decisions."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, LIFECYCLE
from engagement.app import create_app
from engagement.cli import main
from engagement.experiments.replay import day_of
from engagement.experiments.simulate import dry_run, parse_moment
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings
from engagement.strategy.loader import check_folder

from .conftest import AUTH, SITE, ClientFactory, Factory, post_events

Client = TestClient[Any, Any]

LIVE = """
categories:
  products: ["/product"]
strategies:
  - name: big-cart
    priority: 80
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    offer: {invite: callback.html, media: callback}
  - name: pricing-dwell
    priority: 50
    when: {all: [{url: /pricing}, {time_on_page_s: 30}]}
    offer: {invite: chat.html, media: chat}
  - name: product-explorer
    priority: 30
    holdout: 50%
    when: {category: {name: products, count: 3}}
    offer: {invite: chat.html, media: chat}
    variants:
      - {name: a, weight: 1}
      - {name: b, params: {queue: b}, weight: 1}
"""
# The draft: any cart, whatever its value, gets a chat first.
DRAFT = (
    LIVE
    + """
  - name: any-cart
    priority: 90
    when: {event: AddToCart}
    offer: {invite: chat.html, media: chat}
"""
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    live = tmp_path / "strategies"
    live.mkdir()
    (live / "live.yaml").write_text(LIVE)
    return live


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings, folder: Path) -> Client:
    settings = settings.model_copy(update={"strategies_dir": folder})
    return await aiohttp_client(create_app(settings))


async def browse(client: Client) -> None:
    """Visitors of every kind: invited by an event, by dwell, by a category count (held out
    or not), not invited, and one kept from a second invitation by strict mode."""
    for price in (1199, 300):
        f = Factory()
        await post_events(client, f.start(f"{SITE}/cart", "Cart"))
        await post_events(client, [f.event("AddToCart", {"price": price})])
    for leaves in (False, True):
        f = Factory()
        await post_events(client, f.start(f"{SITE}/pricing", "Pricing"))
        if leaves:
            await post_events(client, f.navigate(f"{SITE}/", "Home"))
    for _ in range(6):
        f = Factory()
        await post_events(client, f.start(f"{SITE}/product/1", "One"))
        await post_events(client, f.navigate(f"{SITE}/product/2", "Two"))
        await post_events(client, f.navigate(f"{SITE}/product/3", "Three"))
    f = Factory()  # a big cart, then product pages: busy with the first invitation
    await post_events(client, f.start(f"{SITE}/product/1", "One"))
    await post_events(client, [f.event("AddToCart", {"price": 900})])
    await post_events(client, f.navigate(f"{SITE}/product/2", "Two"))
    await post_events(client, f.navigate(f"{SITE}/product/3", "Three"))
    client.app[LIFECYCLE].tick(now_ms() + 31_000)  # the dwell ripens


@pytest.mark.usefixtures("records_url")  # the history on SQLite and PostgreSQL
async def test_replaying_the_live_folder_reproduces_the_live_decisions(
    client: Client, folder: Path
):
    since = now_ms() - 1000
    await browse(client)
    history = client.app[HISTORY]
    _, attempts = await history.replay_source(since, now_ms() + 60_000)
    live = sorted((a.visit_id, a.strategy, a.variant, a.state.value == "held_out")
                  for a in attempts)  # fmt: skip
    assert sorted(s for _, s, _, _ in live) == [
        "big-cart", "big-cart", "pricing-dwell", *["product-explorer"] * 6,
    ]  # fmt: skip
    assert {v for _, s, v, _ in live if s == "product-explorer"} <= {"holdout", "a", "b"}

    strategies, errors = check_folder(folder)
    assert errors == []
    run = await dry_run(history, strategies, since, now_ms() + 60_000, 1800)

    replayed = sorted((d.visit_id, d.strategy, d.variant, d.held_out) for d in run.decisions)
    assert replayed == live
    assert {r.name: (r.total, r.live_total) for r in run.strategies} == {
        "big-cart": (2, 2),
        "pricing-dwell": (1, 1),
        "product-explorer": (sum(1 for x in live if x[1] == "product-explorer" and not x[3]),) * 2,
    }
    assert run.visits == 11


ANSWERS = """
categories:
  products: ["/product"]
strategies:
  - name: big-cart
    priority: 80
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    offer: {invite: callback.html, media: callback}
  - name: product-explorer
    priority: 30
    when: {category: {name: products, count: 3}}
    offer: {invite: chat.html, media: chat}
    limits: {decline_silences: strategy}  # another strategy's decline does not silence it
"""


@pytest.mark.usefixtures("records_url")  # the history on SQLite and PostgreSQL
async def test_the_replay_follows_what_visitors_answered(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
):
    """Strict mode: a visitor who declined the cart's invitation is free for the next one at
    once; one who left it open is not. Assumed unanswered (open for 30 s), the replay would
    keep the first from her second invitation."""
    folder = tmp_path / "answers"
    folder.mkdir()
    (folder / "answers.yaml").write_text(ANSWERS)
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"strategies_dir": folder}))
    )
    since = now_ms() - 1000
    declines, ignores = Factory(), Factory()
    for f in (declines, ignores):
        await post_events(client, f.start(f"{SITE}/product/1", "One"))
        await post_events(client, [f.event("AddToCart", {"price": 900})])
        if f is declines:
            (attempt,) = client.app[LIFECYCLE].by_id.values()
            query = {"visitID": f.visit_id, "pageID": f.page_id, "code": "declined"}
            r = await client.get(
                client.app.router["disposition"].url_for(attemptID=attempt.attempt_id),
                params=query, headers={"Origin": SITE},
            )  # fmt: skip
            assert r.status == 200, await r.text()
        await post_events(client, f.navigate(f"{SITE}/product/2", "Two"))
        await post_events(client, f.navigate(f"{SITE}/product/3", "Three"))
    history = client.app[HISTORY]
    _, attempts = await history.replay_source(since, now_ms() + 60_000)
    live = sorted((a.visit_id, a.strategy) for a in attempts)
    assert live == sorted([(declines.visit_id, "big-cart"), (declines.visit_id, "product-explorer"),
                           (ignores.visit_id, "big-cart")])  # fmt: skip

    run = await dry_run(history, check_folder(folder)[0], since, now_ms() + 60_000, 1800)

    assert sorted((d.visit_id, d.strategy) for d in run.decisions) == live


async def test_a_draft_is_counted_against_live(client: Client, tmp_path: Path):
    since = now_ms() - 1000
    await browse(client)
    draft = tmp_path / "draft"
    draft.mkdir()
    (draft / "draft.yaml").write_text(DRAFT)
    strategies, _ = check_folder(draft)

    run = await dry_run(client.app[HISTORY], strategies, since, now_ms() + 60_000, 1800)

    by_name = {r.name: r for r in run.strategies}
    assert [(r.name, r.priority, r.total, r.live_total) for r in run.strategies[:3]] == [
        ("any-cart", 90, 3, 0), ("big-cart", 80, 0, 2), ("pricing-dwell", 50, 1, 1),
    ]  # fmt: skip
    assert dict(by_name["any-cart"].took) == {"big-cart": 2}
    assert dict(by_name["big-cart"].lost) == {"any-cart": 2}
    assert len(by_name["big-cart"].live_reached) == 2


async def test_the_command_prints_draft_against_live(
    client: Client, folder: Path, settings: Settings, capsys: pytest.CaptureFixture[str]
):
    await browse(client)
    await client.app[HISTORY].flush()
    until = dt.datetime.fromtimestamp(now_ms() / 1000 + 3600, dt.UTC).isoformat()
    args = ["simulate", "--since", "1d", "--until", until, str(folder),
            "--data-dir", str(settings.data_dir)]  # fmt: skip
    code = await asyncio.to_thread(main, args)
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("Dry run ")
    assert "11 visits" in lines[0]
    assert lines[3].split() == ["big-cart", "80", "2", "/", "2", "2", "/", "2", "0"]
    assert lines[4].split() == ["pricing-dwell", "50", "1", "/", "1", "1", "/", "1", "0"]
    explorer = lines[5].split()[2]  # as many as the holdout left invited
    assert lines[5].split()[:5] == ["product-explorer", "30", explorer, "/", explorer]
    assert lines[7] == "Invitations per day (draft / live):"
    assert lines[8].split() == ["day", "big-cart", "pricing-dwell", "product-explorer"]
    per_day = {line.split()[0]: line.split()[1:] for line in lines[9:] if line[:2] == "20"}
    today = day_of(now_ms()).isoformat()
    assert per_day.pop(today) == ["2", "/", "2", "1", "/", "1", explorer, "/", explorer]
    assert set(map(tuple, per_day.values())) == {("0", "/", "0") * 3}  # the other days
    assert lines[-2:] == ["Visitors won by priority (the other strategy matched too):",
                          "  none: no two strategies matched the same visitor at once"]  # fmt: skip


def test_moments_are_durations_or_utc_days():
    now = parse_moment("2024-05-08", 0)
    assert parse_moment("7d", now) == parse_moment("2024-05-01", 0)
    assert parse_moment("12h", now) == parse_moment("2024-05-07T12:00", 0)
    with pytest.raises(ValueError, match="'last week': write a duration like 7d"):
        parse_moment("last week", now)


def upload(files: dict[str, str], **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, text in files.items():
        form.add_field("files", text.encode(), filename=name, content_type="application/yaml")
    for key, value in {"days": "1", **fields}.items():
        form.add_field(key, value)
    return form


async def test_console_replays_an_uploaded_draft(client: Client):
    await browse(client)
    url = client.app.router["console-simulate-run"].url_for()

    r = await client.post(url, data=upload({"draft.yaml": DRAFT}), headers=AUTH)

    assert r.status == 200, await r.text()
    html = await r.text()
    assert "11 visits" in html
    assert '<svg class="chart"' in html
    assert '<td>any-cart</td><td class="num">90</td><td class="num">3</td>' in html
    assert "takes 2 from big-cart" in html
    assert "loses 2 to any-cart" in html


async def test_console_checks_the_draft_first(client: Client, tmp_path: Path):
    url = client.app.router["console-simulate-run"].url_for()
    broken = "strategies:\n  - name: x\n    when: {evnt: AddToCart}\n"

    r = await client.post(url, data=upload({"broken.yaml": broken}), headers=AUTH)

    assert r.status == 400, await r.text()
    html = await r.text()
    assert (
        "draft/broken.yaml:3:12: unknown key &#39;evnt&#39;: did you mean &#39;event&#39;?" in html
    )
    assert "draft/broken.yaml:2:5: &#39;offer&#39; is required here" in html

    (tmp_path / "server-draft").mkdir()
    (tmp_path / "server-draft" / "d.yaml").write_text(DRAFT)
    (tmp_path / "server-draft" / "code.py").write_text("raise SystemExit('never run')\n")
    r = await client.post(url, data=upload({}, folder=str(tmp_path / "server-draft")),
                          headers=AUTH)  # fmt: skip
    assert r.status == 200, await r.text()
    assert "<td>any-cart</td>" in await r.text()

    r = await client.post(url, data=upload({}, folder=str(tmp_path / "none")), headers=AUTH)
    assert r.status == 400, await r.text()
    assert "none: no such folder on the server." in await r.text()


TYPO = """
strategies:
  - name: cart
    when: {event: AddToCart}
    offer: {invite: chats.html, media: chat}
"""


def test_the_command_checks_the_draft_against_the_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    """As `engagement check` does: a template missing from invites/ is named before a replay
    that would count invitations nobody could have seen."""
    invites = tmp_path / "invites"
    invites.mkdir()
    (invites / "chat.html").write_text("<p>hi</p>")
    draft = tmp_path / "draft"
    draft.mkdir()
    (draft / "typo.yaml").write_text(TYPO)
    monkeypatch.setenv("ENGAGEMENT_INVITES_DIR", str(invites))

    code = main(["simulate", "--since", "1d", str(draft), "--data-dir", str(tmp_path / "data")])

    assert code == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        "draft/typo.yaml:3:1: offer.invite: no template 'chats.html' in invites/: "
        "did you mean 'chat.html'?"
    )


async def test_console_checks_the_draft_against_the_templates(client: Client):
    url = client.app.router["console-simulate-run"].url_for()

    r = await client.post(url, data=upload({"typo.yaml": TYPO}), headers=AUTH)

    assert r.status == 400, await r.text()
    assert "no template &#39;chats.html&#39; in invites/" in await r.text()
