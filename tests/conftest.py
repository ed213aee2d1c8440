from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from engagement.app import create_app
from engagement.settings import Settings

from .redis_cluster import cluster_url, redis_cluster  # noqa: F401  (a real Redis Cluster)
from .servers import database_url, redis_url  # noqa: F401  (fixtures: real Redis, PostgreSQL)

API_KEY = "test-api-key"
SITE = "http://shop.example"
AUTH = {"X-API-Key": API_KEY}

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


def url(
    client: TestClient[Any, Any], name: str, query: Mapping[str, str] | None = None, **parts: str
) -> str:
    """The path of the route ``name`` (see engagement/api/routes.py), with its parts and query."""
    path = client.app.router[name].url_for(**parts)
    return str(path.with_query(query) if query is not None else path)


def new_id() -> str:
    return uuid.uuid4().hex.upper()


class Factory:
    """Builds tracker events in the GWE envelope, one visitor at a time."""

    def __init__(self) -> None:
        self.visit_id = new_id()
        self.global_visit_id = new_id()
        self.page_id = new_id()
        self.url = f"{SITE}/"
        self._clock = itertools.count(1_700_000_000_000, 1000)

    def event(self, name: str, data: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        system = name in {"VisitStarted", "PageEntered", "PageExited", "FocusChanged",
                          "SignIn", "SignOut", "UserInfo"}  # fmt: skip
        event = {
            "eventType": "SYSTEM" if system else "BUSINESS",
            "eventName": name,
            "eventID": new_id(),
            "pageID": self.page_id,
            "visitID": self.visit_id,
            "globalVisitID": self.global_visit_id,
            "timestamp": next(self._clock),
            "url": self.url,
            "category": "",
            "languageCode": "en-GB",
            "data": data or {},
        }
        event.update(fields)
        return event

    def start(self, url: str = f"{SITE}/", title: str = "Home") -> list[dict[str, Any]]:
        """A new visit's first two events."""
        self.url = url
        return [
            self.event("VisitStarted", {"timezoneOffset": -60, "returning": False,
                                        "userAgent": "pytest"}),
            self.event("PageEntered", {"title": title, "referrer": "", "timezoneOffset": -60,
                                       "utm": {}, "focused": True}),
        ]  # fmt: skip

    def navigate(self, url: str, title: str) -> list[dict[str, Any]]:
        exited = self.event("PageExited")
        self.page_id, self.url = new_id(), url
        entered = self.event(
            "PageEntered",
            {
                "title": title,
                "referrer": SITE + "/",
                "timezoneOffset": -60,
                "utm": {},
                "focused": True,
            },
        )
        return [exited, entered]  # fmt: skip


@pytest.fixture
def factory() -> Factory:
    return Factory()


@pytest.fixture
def settings(tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    records = "records_url" in request.fixturenames  # a storage module: both engines
    return Settings(
        database_url=request.getfixturevalue("records_url") if records else None,
        data_dir=tmp_path / "data",
        strategies_dir=tmp_path / "strategies",  # none unless a test writes some
        api_keys=[API_KEY],
        allowed_origins=[SITE, "http://localhost:*", "http://127.0.0.1:*"],
        history_flush_interval_s=0.05,
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def records_url(request: pytest.FixtureRequest) -> str | None:
    """Where a storage test's records live: None (the SQLite file in data_dir) or a fresh
    PostgreSQL schema. A module about storage runs its tests on both engines with
    ``pytestmark = pytest.mark.usefixtures("records_url")``: ``settings`` then uses it (set
    up first, the schema outlives the test's engines)."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("database_url"))


@pytest.fixture
async def client(settings: Settings, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings))


async def post_events(
    client: TestClient[Any, Any], events: list[dict[str, Any]], origin: str = SITE
) -> Any:
    r = await client.post(
        url(client, "events"), json={"events": events}, headers={"Origin": origin}
    )
    assert r.status == 200, await r.text()
    return await r.json()
