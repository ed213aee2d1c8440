"""Experiments in the running engine: holdout and variants decided before an offer, goals
counted for both, conversions across a visitor's visits, and the report that compares them."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY, HUB, LIFECYCLE, PACER
from engagement.app import create_app
from engagement.cli import main
from engagement.monitoring.ingest import now_ms
from engagement.settings import Settings
from engagement.strategy.experiment import bucket
from engagement.strategy.loader import check_folder

from .conftest import AUTH, SITE, ClientFactory, Factory, new_id, post_events, url

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]

EXPERIMENT = """
strategies:
  - name: big-cart
    when: {event: {name: AddToCart, where: {price: {gt: 500}}}}
    offer: {invite: callback.html, media: callback, params: {service: sales}}
    holdout: 50%
    goal:
      event: {name: OrderPlaced, where: {total: {gt: 0}}}
      within_h: 24
      value: total
    variants:
      - {invite: chat.html, media: chat, params: {queue: sales}, weight: 1}
      - {name: short, invite: chat.html, media: chat, params: {queue: short}, weight: 1}
"""


@pytest.fixture
def experiment(settings: Settings, tmp_path: Path) -> Settings:
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "big-cart.yaml").write_text(EXPERIMENT)
    return settings.model_copy(update={"strategies_dir": folder})


@pytest.fixture
async def client(aiohttp_client: ClientFactory, experiment: Settings) -> Client:
    return await aiohttp_client(create_app(experiment))


def test_check_names_experiment_mistakes(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    (tmp_path / "x.yaml").write_text(
        "strategies:\n"
        "  - name: s\n"
        "    when: {event: AddToCart}\n"
        "    offer: {invite: chat.html, media: chat}\n"
        "    holdout: ten\n"
        "    goal: {page: /thanks, value: total}\n"
        "    variants:\n"
        "      - {invite: a.html, wieght: 2}\n"
        "      - {name: b, invite: ../b.html}\n"
    )
    assert main(["check", str(tmp_path)]) == 1
    shown = tmp_path.name
    assert capsys.readouterr().out.splitlines()[:-1] == [
        f"{shown}/x.yaml:6:11: strategies.goal: value sums a field of the goal event: "
        "it needs an event goal",
        f"{shown}/x.yaml:5:14: strategies.holdout: 'ten': write a share like 10%",
        f"{shown}/x.yaml:8:26: unknown key 'wieght': did you mean 'weight'?",
        f"{shown}/x.yaml:9:27: strategies.variants.invite: invite '../b.html' must be a file "
        "name in invites/, e.g. chat.html",
    ]


def test_a_goal_window_is_at_most_30_days(tmp_path: Path):
    """A restart rebuilds open windows from the attempts of the last 30 days (the ones limits
    read), and other nodes read a visitor's attempts that long: a longer window would stop
    counting conversions after a restart."""
    (tmp_path / "x.yaml").write_text(EXPERIMENT.replace("within_h: 24", "within_h: 1200"))
    _, errors = check_folder(tmp_path)
    assert [str(e) for e in errors] == [
        f"{tmp_path.name}/x.yaml:9:17: strategies.goal.within_h: Input should be less than or "
        "equal to 720"
    ]
    (tmp_path / "x.yaml").write_text(EXPERIMENT.replace("within_h: 24", "within_h: 720"))
    assert check_folder(tmp_path)[1] == []


def test_variants_take_their_offer_and_a_name(tmp_path: Path):
    (tmp_path / "x.yaml").write_text(EXPERIMENT)
    strategies, errors = check_folder(tmp_path)
    assert errors == []
    experiment = strategies.by_name["big-cart"].experiment
    assert experiment is not None
    assert experiment.holdout == 0.5
    assert [(a.name, a.offer.invite, a.offer.media, a.offer.params) for a in experiment.arms] == [
        ("chat", "chat.html", "chat", {"queue": "sales"}),
        ("short", "chat.html", "chat", {"queue": "short"}),
    ]


def test_assignment_follows_the_weights(tmp_path: Path):
    (tmp_path / "x.yaml").write_text(
        EXPERIMENT.replace("50%", "10%").replace("weight: 1}", "weight: 3}", 1)
    )
    experiment = check_folder(tmp_path)[0].by_name["big-cart"].experiment
    assert experiment is not None
    n = 20_000
    groups = Counter(experiment.assign(new_id(), "big-cart").variant for _ in range(n))
    # Expected shares 10 %, 67.5 %, 22.5 %; three standard deviations are under 1 point.
    assert abs(groups["holdout"] / n - 0.10) < 0.012
    assert abs(groups["chat"] / n - 0.675) < 0.012
    assert abs(groups["short"] / n - 0.225) < 0.012


def test_assignment_is_the_same_in_another_process():
    ids = [new_id() for _ in range(50)]
    script = (
        "import sys\nfrom engagement.strategy.experiment import bucket\n"
        "for gvid in sys.argv[1:]: print(repr(bucket(gvid, 'big-cart')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *ids], capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == [repr(bucket(gvid, "big-cart")) for gvid in ids]
    assert bucket(ids[0], "big-cart") != bucket(ids[0], "other")


def buffered(client: Client, factory: Factory) -> list[bytes]:
    """What the visit's pages were sent so far (buffered by the hub)."""
    stream = client.app[HUB].connect(factory.visit_id, factory.page_id, 0, now_ms())
    return list(stream.waiting())


async def qualify(client: Client, factory: Factory) -> dict[str, Any]:
    await post_events(client, factory.start(f"{SITE}/cart", "Cart"))
    await post_events(client, [factory.event("AddToCart", {"sku": "WH15", "price": 1199})])
    r = await client.get(url(client, "visit", visitID=factory.visit_id), headers=AUTH)
    assert r.status == 200, await r.text()
    (attempt,) = (await r.json())["attempts"]
    return attempt  # type: ignore[no-any-return]


async def test_holdout_is_recorded_and_shown_nothing(client: Client):
    visitors = [Factory() for _ in range(16)]
    for f in visitors:
        attempt = await qualify(client, f)
        held = bucket(f.global_visit_id, "big-cart") < 0.5
        if held:
            assert (attempt["state"], attempt["variant"]) == ("held_out", "holdout")
            assert [t["state"] for t in attempt["transitions"]] == ["detected", "held_out"]
            assert buffered(client, f) == []
        else:
            assert attempt["state"] == "offered"
            assert attempt["variant"] in ("chat", "short")
            queue = {"chat": "sales", "short": "short"}[attempt["variant"]]
            assert (attempt["invite"], attempt["media"], attempt["params"]) == (
                "chat.html", "chat", {"queue": queue},
            )  # fmt: skip
            assert len(buffered(client, f)) == 1


def held_and_invited() -> tuple[Factory, Factory]:
    """A visitor whom big-cart's 50 % holdout keeps out, and one it invites."""
    held, invited = Factory(), Factory()
    while bucket(held.global_visit_id, "big-cart") >= 0.5:
        held = Factory()
    while bucket(invited.global_visit_id, "big-cart") < 0.5:
        invited = Factory()
    return held, invited


async def test_goal_counts_across_visits_for_both_groups(client: Client):
    held, invited = held_and_invited()
    for f in (held, invited):
        await qualify(client, f)
        await post_events(client, [f.event("OrderPlaced", {"total": 0})])  # not the goal
        f.visit_id, f.page_id = new_id(), new_id()  # the visitor comes back another day
        await post_events(client, f.start(f"{SITE}/checkout", "Checkout"))
        await post_events(client, [f.event("OrderPlaced", {"total": "120.50"})])
    await post_events(client, [invited.event("OrderPlaced", {"total": 80})])
    stranger = Factory()  # never qualified: converts for nobody
    await post_events(client, stranger.start())
    await post_events(client, [stranger.event("OrderPlaced", {"total": 999})])

    r = await client.get(client.app.router["report-experiments"].url_for(), headers=AUTH)
    assert r.status == 200, await r.text()
    arms = {a["arm"]: a for a in (await r.json())["arms"]}
    assert {k: {f: a[f] for f in ("qualified", "shown", "converted", "value")}
            for k, a in arms.items()} == {
        "holdout": {"qualified": 1, "shown": 0, "converted": 1, "value": 120.5},
        invited_arm(invited): {"qualified": 1, "shown": 0, "converted": 1, "value": 200.5},
    }  # fmt: skip
    found = await client.app[HISTORY].db.fetchall(
        "SELECT visit_id, goal, value FROM conversions WHERE global_visit_id = ?",
        (invited.global_visit_id,),
    )
    rows = sorted(tuple(r) for r in found)
    assert rows == [(invited.visit_id, "OrderPlaced", 80), (invited.visit_id, "OrderPlaced", 120.5)]
    r = await client.get(client.app.router["metrics"].url_for())
    metrics = (await r.text()).splitlines()
    assert "engagement_conversions_total 3.0" in metrics  # held out 1, invited 2
    assert "engagement_goal_windows 2.0" in metrics


async def test_shown_and_accepted_are_what_the_page_answered(client: Client):
    answers = {"shown": ["shown"], "accepted": ["shown", "accepted"], "none": []}
    visitors: dict[str, Factory] = {}
    while len(visitors) < len(answers):  # invited visitors, one for each answer
        f = Factory()
        if bucket(f.global_visit_id, "big-cart") >= 0.5:
            visitors[list(answers)[len(visitors)]] = f
    arms: Counter[str] = Counter()  # visitors by variant
    for name, f in visitors.items():
        attempt = await qualify(client, f)
        arms[attempt["variant"]] += 1
        for code in answers[name]:
            query = {"visitID": f.visit_id, "pageID": f.page_id, "code": code}
            r = await client.get(url(client, "disposition", attemptID=attempt["attemptID"]),
                                 params=query, headers={"Origin": SITE})  # fmt: skip
            assert r.status == 200, await r.text()

    r = await client.get(client.app.router["report-experiments"].url_for(), headers=AUTH)
    assert r.status == 200, await r.text()
    variants = [a for a in (await r.json())["arms"] if a["arm"] in ("chat", "short")]
    assert {a["arm"]: a["qualified"] for a in variants} == arms
    counts = [(a["qualified"], a["shown"], a["accepted"]) for a in variants]
    assert tuple(map(sum, zip(*counts, strict=True))) == (3, 2, 1)


async def test_an_order_in_two_windows_is_counted_once(client: Client):
    """A visitor picked in two visits has two open windows: one order converts both attempts,
    and the report counts its value once (the holdout, which never makes a visit busy, gets
    more attempts than invited visitors: counting per attempt would favour it)."""
    held, invited = held_and_invited()
    for f in (held, invited):
        await qualify(client, f)
        f.visit_id, f.page_id = new_id(), new_id()  # back an hour later: picked again
        await qualify(client, f)
        await post_events(client, [f.event("OrderPlaced", {"total": 100})])

    r = await client.get(client.app.router["report-experiments"].url_for(), headers=AUTH)
    assert r.status == 200, await r.text()
    arms = {a["arm"]: a for a in (await r.json())["arms"]}
    assert {k: {f: a[f] for f in ("qualified", "converted", "value")}
            for k, a in arms.items()} == {
        "holdout": {"qualified": 1, "converted": 1, "value": 100},
        invited_arm(invited): {"qualified": 1, "converted": 1, "value": 100},
    }  # fmt: skip
    found = await client.app[HISTORY].db.fetchall("SELECT COUNT(*) FROM conversions", ())
    assert [tuple(row) for row in found] == [(4,)]  # each attempt converted


async def test_after_a_restart_windows_are_open_and_visitors_keep_their_arm(
    aiohttp_client: ClientFactory, experiment: Settings
):
    client = await aiohttp_client(create_app(experiment))
    visitors = [Factory() for _ in range(8)]
    first = {f.global_visit_id: await qualify(client, f) for f in visitors}
    await client.close()

    client = await aiohttp_client(create_app(experiment))
    for f in visitors:  # back in a new visit, picked again, then an order
        f.visit_id, f.page_id = new_id(), new_id()
        again = await qualify(client, f)
        assert again["variant"] == first[f.global_visit_id]["variant"]
        await post_events(client, [f.event("OrderPlaced", {"total": 10})])

    await client.app[HISTORY].flush()
    found = await client.app[HISTORY].db.fetchall("SELECT attempt_id FROM conversions", ())
    converted = {row[0] for row in found}
    # The windows opened before the restart were rebuilt from the recorded attempts.
    assert {a["attemptID"] for a in first.values()} <= converted
    assert len(converted) == 2 * len(visitors)


def invited_arm(f: Factory) -> str:
    u = (bucket(f.global_visit_id, "big-cart") - 0.5) / 0.5
    return "chat" if u < 0.5 else "short"


async def test_console_page_and_csv_show_the_arms(client: Client):
    held, invited = held_and_invited()
    for f in (held, invited):
        await qualify(client, f)
    await post_events(client, [invited.event("OrderPlaced", {"total": 10})])
    arm = invited_arm(invited)

    r = await client.get(client.app.router["console-experiments"].url_for(), headers=AUTH)
    assert r.status == 200, await r.text()
    html = await r.text()
    assert '<svg class="chart"' in html
    assert f"big-cart, {arm}: 100.0 % converted" in html
    assert "big-cart, holdout: 0.0 % converted" in html
    assert "no clear effect: +100.0 pts (-" in html  # one visitor per group proves nothing
    # value 10.00 from one visitor: 10.00 per visitor
    assert '<td class="num">10.00</td><td class="num">10.00</td>' in html

    r = await client.get(client.app.router["console-experiments-csv"].url_for(), headers=AUTH)
    assert r.status == 200, await r.text()
    lines = (await r.text()).splitlines()
    assert [line.split(",")[:6] for line in lines[1:]] == [
        ["big-cart", "holdout", "1", "0", "0", "0"],
        ["big-cart", arm, "1", "0", "0", "1"],
    ]


PLAIN = """
strategies:
  - name: help
    when: {event: Help}
    offer: {invite: chat.html, media: chat}
  - name: question
    when: {event: Question}
    offer: {invite: chat.html, media: chat}
    goal: OrderPlaced
"""


async def test_the_report_leaves_out_strategies_without_an_experiment(
    aiohttp_client: ClientFactory, experiment: Settings
):
    """A strategy with no goal, holdout or variants has nothing to report: listed, it would
    read as converting 0 % of its visitors. One with a goal alone is listed before any
    conversion (0 % is then what it measured)."""
    (experiment.strategies_dir / "plain.yaml").write_text(PLAIN)
    client = await aiohttp_client(create_app(experiment))
    held, _ = held_and_invited()
    await qualify(client, held)
    for name in ("Help", "Question"):
        f = Factory()
        await post_events(client, [*f.start(), f.event(name)])
    assert {a.strategy for a in client.app[LIFECYCLE].by_id.values()} == {
        "big-cart", "help", "question",
    }  # fmt: skip

    r = await client.get(client.app.router["report-experiments"].url_for(), headers=AUTH)
    assert r.status == 200, await r.text()
    arms = [(a["strategy"], a["arm"], a["qualified"]) for a in (await r.json())["arms"]]
    assert arms == [("big-cart", "holdout", 1), ("question", "invited", 1)]
    r = await client.get(client.app.router["console-experiments-csv"].url_for(), headers=AUTH)
    assert [line.split(",")[:2] for line in (await r.text()).splitlines()[1:]] == [
        ["big-cart", "holdout"], ["question", "invited"],
    ]  # fmt: skip
    r = await client.get(client.app.router["console-experiments"].url_for(), headers=AUTH)
    html = await r.text()
    assert "question, invited: 0.0 % converted" in html
    assert "help, invited" not in html


async def test_report_needs_the_api_key(client: Client):
    r = await client.get(client.app.router["report-experiments"].url_for())
    assert r.status == 401, await r.text()


async def test_openapi_documents_the_report(client: Client):
    r = await client.get(client.app.router["openapi"].url_for())
    assert r.status == 200, await r.text()
    doc = await r.json()
    op = doc["paths"]["/api/v1/reports/experiments"]["get"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ExperimentReportOut"
    }
    assert [p["name"] for p in op["parameters"]] == ["from", "until", "strategy"]
    assert set(doc["components"]["schemas"]["ArmOut"]["properties"]) == {
        "strategy", "arm", "qualified", "shown", "accepted", "converted", "conversionRate",
        "rateLow", "rateHigh", "value", "valuePerVisitor", "lift",
    }  # fmt: skip


PACED = """
strategies:
  - name: cart
    when: {event: AddToCart}
    availability: {group: sales}
    holdout: 50%
    goal: OrderPlaced
    offer: {invite: chat.html, media: chat}
"""


async def test_held_out_visitors_take_no_pacing_capacity(
    aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path
):
    folder = tmp_path / "paced"
    folder.mkdir()
    (folder / "cart.yaml").write_text(PACED)
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"strategies_dir": folder}))
    )
    r = await client.put(client.app.router["availability-group"].url_for(group="sales"),
                         json={"agentsReady": 1}, headers=AUTH)  # fmt: skip
    assert r.status == 200, await r.text()
    visitors = [Factory() for _ in range(20)]
    for f in visitors:
        await post_events(client, [*f.start(), f.event("AddToCart")])

    held = sum(bucket(f.global_visit_id, "cart") < 0.5 for f in visitors)
    states = Counter(a.state.value for a in client.app[LIFECYCLE].by_id.values())
    # The holdout is decided first: the one free slot goes to an invited visitor, and only
    # invited visitors wait in the paced line.
    assert states == Counter({"held_out": held, "offered": 1, "paced": 20 - held - 1})
    plan = client.app[PACER].plan("sales", now_ms())
    assert len(plan.pending.invited) == 1


def test_check_names_a_variant_template_missing_from_invites(tmp_path: Path):
    invites = tmp_path / "invites"
    invites.mkdir()
    for name in ("callback.html", "chat.html"):
        (invites / name).write_text("<p>hi</p>")
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "x.yaml").write_text(
        EXPERIMENT.replace("name: short, invite: chat.html", "name: short, invite: chat-short.html")
    )
    _, errors = check_folder(folder, invites)
    assert [str(e) for e in errors] == [
        "strategies/x.yaml:3:1: variants.short.invite: no template 'chat-short.html' in "
        "invites/: did you mean 'chat.html'?"
    ]


SEEDED = """
strategies:
  - name: cart
    when: {event: AddToCart}
    offer: {invite: chat.html, media: chat}
    holdout: 50%
    goal: {event: OrderPlaced, value: total}
"""


async def population(
    client: Client, seed: int, n: int, p_holdout: float, p_invited: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``n`` seeded visitors qualify; each then orders with the chance of the arm the engine
    put it in. Returns the report's holdout and invited rows."""
    rng = random.Random(seed)
    visitors = []
    for _ in range(n):
        f = Factory()
        f.global_visit_id = f"{rng.getrandbits(128):032X}"
        visitors.append(f)
    for i in range(0, n, 25):
        await post_events(client, [e for f in visitors[i : i + 25]
                                   for e in (*f.start(), f.event("AddToCart"))])  # fmt: skip
    arm = {a.global_visit_id: a.variant for a in client.app[LIFECYCLE].by_id.values()}
    orders: Counter[str] = Counter()
    placed = []
    for f in visitors:
        chance = p_holdout if arm[f.global_visit_id] == "holdout" else p_invited
        if rng.random() < chance:
            orders[arm[f.global_visit_id]] += 1
            placed.append(f.event("OrderPlaced", {"total": 50}))
    for i in range(0, len(placed), 100):
        await post_events(client, placed[i : i + 100])
    r = await client.get(client.app.router["report-experiments"].url_for(), headers=AUTH)
    assert r.status == 200, await r.text()
    holdout, invited = (await r.json())["arms"]
    assert (holdout["arm"], invited["arm"]) == ("holdout", "invited")
    assert holdout["qualified"] + invited["qualified"] == n
    assert (holdout["converted"], invited["converted"]) == (orders["holdout"], orders[""])
    assert (holdout["value"], invited["value"]) == (50 * orders["holdout"], 50 * orders[""])
    for row, arm in ((holdout, "holdout"), (invited, "")):
        assert row["valuePerVisitor"] == pytest.approx(50 * orders[arm] / row["qualified"])
    return holdout, invited


@pytest.fixture
async def seeded(aiohttp_client: ClientFactory, settings: Settings, tmp_path: Path) -> Client:
    folder = tmp_path / "seeded"
    folder.mkdir()
    (folder / "cart.yaml").write_text(SEEDED)
    return await aiohttp_client(create_app(settings.model_copy(update={"strategies_dir": folder})))


async def test_a_seeded_population_with_an_effect_shows_it_within_its_interval(seeded: Client):
    # Invited visitors order 3 times in 10, held-out ones once: a true lift of +20 points.
    holdout, invited = await population(seeded, 13, 800, 0.10, 0.30)
    assert abs(holdout["qualified"] - 400) < 60  # the hash splits 50/50 (3 sd: 42)
    lift = invited["lift"]
    assert lift["low"] <= 0.20 <= lift["high"]
    assert lift["low"] > 0
    assert lift["significant"] is True
    # The console's chart says so, in green.
    r = await seeded.get(seeded.app.router["console-experiments"].url_for(), headers=AUTH)
    note = f"{lift['difference'] * 100:+.1f} pts ({lift['low'] * 100:+.1f} to"
    assert f'fill="#15803d">better: {note}' in await r.text()


async def test_a_seeded_population_without_an_effect_claims_none(seeded: Client):
    _, invited = await population(seeded, 17, 800, 0.20, 0.20)
    lift = invited["lift"]
    assert lift["low"] <= 0 <= lift["high"]
    assert lift["significant"] is False
