"""Claims of docs/migrating-from-gwe.md that no other test makes (each test names its claim)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from engagement.api.routes import ROUTES
from engagement.api.state import REGISTRY
from engagement.app import create_app
from engagement.settings import Settings

from .conftest import AUTH, ClientFactory, url

Client = TestClient[Any, Any]
GWE_DOC_VISIT_ID = "f24c60f6-0728-4f3d-b8b4-1e7bad2dc8a3"  # as GWE's documentation writes IDs


async def test_every_gwe_path_needs_credentials(client: Client):
    """Claim: every /server/data/ call needs an API key (or a Basic user); GWE's did not."""
    gwe = [r for r in ROUTES if r.path.startswith("/server/data/")]
    assert len(gwe) >= 10
    for route in gwe:
        target = route.path.format(visitID="0" * 32, visitId="0" * 32, pageId="0" * 32,
                                   identityId="ada@example.com")  # fmt: skip
        r = await client.request(route.method, target, json={})
        assert r.status == 401, route.name
        assert (await r.json())["error"] == "unauthorized", route.name


async def test_ids_are_32_upper_case_hex_not_dashed_uuids(client: Client):
    """Claim: IDs stored from GWE (dashed, lower-case UUIDs) are refused with a 400."""
    r = await client.get(url(client, "gwe-visit", visitId=GWE_DOC_VISIT_ID), headers=AUTH)
    assert r.status == 400
    assert (await r.json())["details"][0]["field"] == "visitId"


async def test_visits_close_after_30_idle_minutes_unless_configured(
    aiohttp_client: ClientFactory, settings: Settings
):
    """Claim: a visit ends after `visit_timeout_s` idle (1800 s), not GWE's 86,400 s
    `visitExpirationTime`; setting it to 86400 brings GWE's length back, tracker included."""
    assert Settings.model_fields["visit_timeout_s"].default == 1800
    client = await aiohttp_client(
        create_app(settings.model_copy(update={"visit_timeout_s": 86400}))
    )
    assert client.app[REGISTRY].visit_timeout_ms == 86_400_000
    r = await client.get(url(client, "tracker"))
    assert '"visitTimeoutS":86400' in await r.text()


async def test_what_is_not_provided(client: Client):
    """Claims: push is Server-Sent Events (no CometD handshake); the list of all identities
    and the lookup of one event by its ID are not provided."""
    not_provided = ("/cometd/handshake", "/server/data/identities",
                    f"/server/data/events/{'0' * 32}")  # fmt: skip
    for path in not_provided:
        r = await client.get(path, headers=AUTH)
        assert r.status == 404, path
        assert (await r.json())["error"] == "not_found", path


def test_the_guide_names_only_tests_that_exist():
    """Every `file::test` the migration guide cites is a test in that file (`::test` alone
    means the file cited just before)."""
    root = Path(__file__).resolve().parent
    guide = (root.parent / "docs" / "migrating-from-gwe.md").read_text()
    cited = re.findall(r"`((?:[\w/]+\.py)?)::(\w+)`", guide)
    assert len(cited) >= 30
    current = ""
    for file, name in cited:
        current = file or current
        source = (root / current).read_text()
        assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), f"{current}::{name}"
