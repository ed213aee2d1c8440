"""The strategy report: its numbers through the JSON API, the CSV export and the console page."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from engagement.api.state import HISTORY
from engagement.attempts import Attempt, Origin, State
from engagement.console.report import StrategyReportOut
from engagement.reports import FunnelRow, funnel, record_of
from engagement.settings import Settings

from .conftest import API_KEY, AUTH, ClientFactory, new_id, url
from .test_console import console_app

pytestmark = pytest.mark.usefixtures("records_url")  # storage: SQLite and PostgreSQL

Client = TestClient[Any, Any]
REPORT = "report-strategies"  # the route's name


def at(moment: str) -> int:
    """Engine ms of a UTC moment, ``2024-05-01T10:00``."""
    return int(dt.datetime.fromisoformat(moment).replace(tzinfo=dt.UTC).timestamp() * 1000)


def attempt(strategy: str, created: str, *states: str) -> Attempt:
    """An attempt created at ``created`` and moved through ``states``, a second apart."""
    created_at = at(created)
    a = Attempt(
        attempt_id=new_id(),
        visit_id=new_id(),
        global_visit_id=new_id(),
        page_id=new_id(),
        strategy=strategy,
        origin=Origin.AGENT if strategy.startswith("agent:") else Origin.STRATEGY,
        invite="chat.html",
        media="chat",
        params={},
        timeout_s=30,
        created_at=created_at,
    )
    for i, state in enumerate(states, 1):
        a.move(State(state), created_at + i * 1000)
    return a


ATTEMPTS = [
    attempt(
        "pricing-dwell", "2024-05-01T09:00", "offered", "shown", "accepted", "launched", "completed"
    ),
    attempt("pricing-dwell", "2024-05-01T10:00", "offered", "shown", "declined"),
    attempt("pricing-dwell", "2024-05-01T11:00", "offered", "shown", "timed_out"),
    attempt("pricing-dwell", "2024-05-01T12:00", "timed_out"),  # never offered
    attempt("pricing-dwell", "2024-05-02T23:59:59.999", "offered", "shown", "accepted", "failed"),
    attempt("big-cart", "2024-05-01T00:00", "offered", "accepted", "launched"),  # never shown
    attempt("big-cart", "2024-05-03T08:00", "cancelled"),
    attempt("agent:console", "2024-05-02T15:00", "offered", "shown", "accepted"),
    attempt("pricing-dwell", "2024-04-30T23:59:59.999", "offered"),
]


def counts(
    detected: int = 0,
    offered: int = 0,
    shown: int = 0,
    accepted: int = 0,
    declined: int = 0,
    timed_out: int = 0,
    launched: int = 0,
    completed: int = 0,
    rate: float | None = None,
    paced: int = 0,
) -> dict[str, Any]:
    return {
        "detected": detected,
        "paced": paced,
        "offered": offered,
        "shown": shown,
        "accepted": accepted,
        "declined": declined,
        "timedOut": timed_out,
        "launched": launched,
        "completed": completed,
        "acceptanceRate": rate,
    }


AGENT_0502 = {"strategy": "agent:console", "day": "2024-05-02", **counts(1, 1, 1, 1, rate=1.0)}
CART_0501 = {"strategy": "big-cart", "day": "2024-05-01", **counts(1, 1, 0, 1, launched=1)}
CART_0503 = {"strategy": "big-cart", "day": "2024-05-03", **counts(1)}
DWELL_0430 = {"strategy": "pricing-dwell", "day": "2024-04-30", **counts(1, 1)}
DWELL_0501 = {
    "strategy": "pricing-dwell",
    "day": "2024-05-01",
    **counts(4, 3, 3, 1, declined=1, timed_out=2, launched=1, completed=1, rate=0.3333),
}
DWELL_0502 = {"strategy": "pricing-dwell", "day": "2024-05-02", **counts(1, 1, 1, 1, rate=1.0)}


@pytest.fixture
async def client(aiohttp_client: ClientFactory, settings: Settings) -> Client:
    client: Client = await aiohttp_client(console_app(settings))
    history = client.app[HISTORY]
    for a in ATTEMPTS:
        history.record_attempt(a)
    return client


async def report(client: Client, query: dict[str, str] | None = None) -> dict[str, Any]:
    r = await client.get(url(client, REPORT, query), headers=AUTH)
    assert r.status == 200, await r.text()
    body: dict[str, Any] = await r.json()
    StrategyReportOut.model_validate(body)
    return body


async def test_funnel_per_strategy_and_day(client: Client):
    body = await report(client)

    assert body == {
        "from": None,
        "until": None,
        "strategy": None,
        "days": [AGENT_0502, CART_0501, CART_0503, DWELL_0430, DWELL_0501, DWELL_0502],
        "strategies": [
            {"strategy": "agent:console", **counts(1, 1, 1, 1, rate=1.0)},
            {"strategy": "big-cart", **counts(2, 1, 0, 1, launched=1)},
            {
                "strategy": "pricing-dwell",
                **counts(6, 5, 4, 2, declined=1, timed_out=2, launched=1, completed=1, rate=0.5),
            },
        ],
    }


async def test_days_are_inclusive_utc_days(client: Client):
    body = await report(client, {"from": "2024-05-02", "until": "2024-05-02"})

    assert body["from"] == body["until"] == "2024-05-02"
    assert body["days"] == [AGENT_0502, DWELL_0502]


@pytest.mark.parametrize(
    ("query", "days"),
    [
        ({"from": "2024-05-02"}, [AGENT_0502, CART_0503, DWELL_0502]),
        ({"until": "2024-04-30"}, [DWELL_0430]),
        (
            {"from": "2024-05-01", "until": ""},
            [AGENT_0502, CART_0501, CART_0503, DWELL_0501, DWELL_0502],
        ),
        ({"from": "2024-06-01"}, []),
    ],
)
async def test_one_sided_date_filters(
    client: Client, query: dict[str, str], days: list[dict[str, Any]]
):
    body = await report(client, query)

    assert body["days"] == days


async def test_strategy_filter(client: Client):
    body = await report(
        client, {"strategy": "pricing-dwell", "from": "2024-05-01", "until": "2024-05-31"}
    )

    assert body == {
        "from": "2024-05-01",
        "until": "2024-05-31",
        "strategy": "pricing-dwell",
        "days": [DWELL_0501, DWELL_0502],
        "strategies": [
            {
                "strategy": "pricing-dwell",
                **counts(5, 4, 4, 2, declined=1, timed_out=2, launched=1, completed=1, rate=0.5),
            }
        ],
    }


async def test_unknown_strategy_has_no_rows(client: Client):
    body = await report(client, {"strategy": "nobody"})

    assert (body["days"], body["strategies"]) == ([], [])


async def test_report_needs_the_api_key(client: Client):
    r = await client.get(url(client, REPORT))

    assert r.status == 401, await r.text()
    assert (await r.json())["error"] == "unauthorized"


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"from": "2024-13-01"}, "from", "Value error, '2024-13-01' is not a day of the calendar"),
        (
            {"until": "yesterday"},
            "until",
            "Value error, expected a day as YYYY-MM-DD, not 'yesterday'",
        ),
        (
            {"from": "1714521600"},
            "from",
            "Value error, expected a day as YYYY-MM-DD, not '1714521600'",
        ),
    ],
)
async def test_bad_date_names_the_field(
    client: Client, query: dict[str, str], field: str, message: str
):
    r = await client.get(url(client, REPORT, query), headers=AUTH)

    assert r.status == 400, await r.text()
    assert await r.json() == {
        "error": "invalid_input",
        "message": f"invalid query: {field}: {message}",
        "details": [{"field": field, "message": message, "type": "value_error"}],
    }


async def test_from_after_until_is_refused(client: Client):
    r = await client.get(
        url(client, REPORT, {"from": "2024-05-03", "until": "2024-05-01"}), headers=AUTH
    )

    assert r.status == 400, await r.text()
    assert await r.json() == {
        "error": "invalid_input",
        "message": "invalid query: from 2024-05-03 is after until 2024-05-01",
        "details": [{"field": "from", "message": "after until"}],
    }


# -- CSV export --

CSV_HEADER = (
    "strategy,day,detected,paced,offered,shown,accepted,declined,timed_out,launched,completed,"
    "acceptance_rate"
)


async def test_csv_export_has_the_same_rows(client: Client):
    r = await client.get(
        url(client, "console-reports-csv", {"from": "2024-05-01", "until": "2024-05-02"}),
        headers=AUTH,
    )

    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/csv")
    assert r.headers["Content-Disposition"] == (
        'attachment; filename="strategy-report-2024-05-01-2024-05-02.csv"'
    )
    assert (await r.text()).split("\r\n") == [
        CSV_HEADER,
        "agent:console,2024-05-02,1,0,1,1,1,0,0,0,0,1.0000",
        "big-cart,2024-05-01,1,0,1,0,1,0,0,1,0,",
        "pricing-dwell,2024-05-01,4,0,3,3,1,1,2,1,1,0.3333",
        "pricing-dwell,2024-05-02,1,0,1,1,1,0,0,0,0,1.0000",
        "",
    ]


async def test_csv_export_with_the_strategy_filter(client: Client):
    r = await client.get(url(client, "console-reports-csv", {"strategy": "big-cart"}), headers=AUTH)

    assert r.status == 200, await r.text()
    assert (await r.text()).split("\r\n") == [
        CSV_HEADER,
        "big-cart,2024-05-01,1,0,1,0,1,0,0,1,0,",
        "big-cart,2024-05-03,1,0,0,0,0,0,0,0,0,",
        "",
    ]


async def test_csv_export_neutralizes_formula_cells(client: Client):
    hostile = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+1+2", "-3", "@SUM(A1)",
               "\tTAB", "\rCR", "plain=text"]  # fmt: skip
    for name in hostile:
        client.app[HISTORY].record_attempt(attempt(name, "2024-06-01T10:00", "offered"))
    query = {"from": "2024-06-01", "until": "2024-06-01"}
    r = await client.get(url(client, "console-reports-csv", query), headers=AUTH)

    assert r.status == 200, await r.text()
    assert (await r.text()).split("\r\n") == [
        CSV_HEADER,
        "'\tTAB,2024-06-01,1,0,1,0,0,0,0,0,0,",
        '"\'\rCR",2024-06-01,1,0,1,0,0,0,0,0,0,',
        "'+1+2,2024-06-01,1,0,1,0,0,0,0,0,0,",
        "'-3,2024-06-01,1,0,1,0,0,0,0,0,0,",
        '"\'=HYPERLINK(""http://evil.example"",""x"")",2024-06-01,1,0,1,0,0,0,0,0,0,',
        "'@SUM(A1),2024-06-01,1,0,1,0,0,0,0,0,0,",
        "plain=text,2024-06-01,1,0,1,0,0,0,0,0,0,",
        "",
    ]


async def test_csv_export_needs_a_session_or_key(client: Client):
    r = await client.get(url(client, "console-reports-csv"))

    assert r.status == 401, await r.text()


async def test_csv_export_bad_date_names_the_field(client: Client):
    r = await client.get(url(client, "console-reports-csv", {"until": "2024-5-1"}), headers=AUTH)

    assert r.status == 400, await r.text()
    assert (await r.json())["details"][0]["field"] == "until"


# -- the console page --


async def test_report_page_has_chart_table_and_filters(client: Client):
    r = await client.post(
        url(client, "console-login"), data={"key": API_KEY}, allow_redirects=False
    )
    assert r.status == 303

    r = await client.get(
        url(
            client, "console-reports", {"from": "2024-05-01", "until": "2024-05-31", "strategy": ""}
        )
    )

    assert r.status == 200, await r.text()
    html = await r.text()
    assert '<svg class="chart"' in html
    for name in ("agent:console", "big-cart", "pricing-dwell"):
        assert f'font-weight="600" fill="#0f172a">{name}</text>' in html
    assert "acceptance 50.0 %" in html  # pricing-dwell in May: 2 accepted of 4 shown
    assert '<input type="date" name="from" value="2024-05-01">' in html
    assert 'href="/console/reports.csv?from=2024-05-01&amp;until=2024-05-31&amp;strategy="' in html
    assert '<option value="pricing-dwell">pricing-dwell</option>' in html


async def test_report_page_tells_a_bad_date(client: Client):
    r = await client.get(url(client, "console-reports", {"from": "01/05/2024"}), headers=AUTH)

    assert r.status == 400, await r.text()
    assert "from: Value error, expected a day as YYYY-MM-DD, not &#39;01/05/2024&#39;" in (
        await r.text()
    )


# -- the pure computation --


def test_funnel_counts_every_state_reached_once():
    day = at("2024-05-01T10:00")
    transitions = [["detected", day, ""], ["offered", day + 1, ""], ["timed_out", day + 2, "x"]]
    records = [
        record_of("s", day, transitions),
        record_of("s", day, [["detected", day, ""], ["cancelled", day + 5, "noengage"]]),
    ]

    [row] = funnel(records)

    assert row == FunnelRow(
        "s",
        dt.date(2024, 5, 1),
        {
            "detected": 2,
            "paced": 0,
            "offered": 1,
            "shown": 0,
            "accepted": 0,
            "declined": 0,
            "timed_out": 1,
            "launched": 0,
            "completed": 0,
        },
    )
    assert row.acceptance_rate is None


def test_funnel_shows_demand_held_back_by_pacing():
    day = at("2024-05-01T10:00")
    lost = [["detected", day, ""], ["paced", day, "no room"], ["timed_out", day + 9, ""]]
    late = [["detected", day, ""], ["paced", day, "no room"], ["offered", day + 5, ""]]
    [row] = funnel([record_of("s", day, lost), record_of("s", day, late)])
    assert (row.counts["detected"], row.counts["paced"], row.counts["offered"]) == (2, 2, 1)
