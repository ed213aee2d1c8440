"""`engagement copy-history`: a SQLite history written by the engine goes into PostgreSQL,
where an engine reads it as it was; a second run adds nothing."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from engagement.api.state import HISTORY
from engagement.app import create_app
from engagement.settings import Settings

from .conftest import AUTH, ClientFactory, Factory, post_events, url


async def copy(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engagement", "copy-history", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def counts(output: str) -> dict[str, tuple[int, int]]:
    """table -> (rows read, rows added), from the command's lines."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 6 and parts[2:4] == ["rows", "read,"]:
            found[parts[0]] = (int(parts[1]), int(parts[4]))
    return found


async def test_a_sqlite_history_copied_into_postgresql_reads_the_same(
    database_url: str, aiohttp_client: ClientFactory, settings: Settings
):
    visitors = [Factory(), Factory()]
    embedded = await aiohttp_client(create_app(settings))
    for f in visitors:
        await post_events(embedded, f.start())
        await post_events(embedded, f.navigate("http://shop.example/pricing", "Pricing"))
    await post_events(embedded, [visitors[0].event("SignIn", {"identityId": "ann@example.com"})])
    before: list[Any] = []
    for f in visitors:
        r = await embedded.get(url(embedded, "visit", visitID=f.visit_id), headers=AUTH)
        before.append(await r.json())
    await embedded.close()  # the file holds everything now

    status, out = await copy("--from", str(settings.db_path), "--to", database_url)
    assert status == 0, out
    first = counts(out)
    assert {t: first[t] for t in ("visits", "pages", "events", "identities")} == {
        "visits": (2, 2), "pages": (4, 4), "events": (9, 9), "identities": (1, 1),
    }  # fmt: skip
    status, out = await copy("--from", str(settings.db_path), "--to", database_url)
    assert status == 0, out
    assert {t: added for t, (_, added) in counts(out).items()} == dict.fromkeys(first, 0)

    node = await aiohttp_client(create_app(settings.model_copy(update={
        "database_url": database_url, "data_dir": settings.data_dir / "node"})))  # fmt: skip
    assert node.app[HISTORY].db.dialect == "postgresql"
    after = []
    for f in visitors:
        r = await node.get(url(node, "visit", visitID=f.visit_id), headers=AUTH)
        assert r.status == 200, await r.text()
        after.append(await r.json())
    for visit in before + after:
        visit.pop("live", None)  # live on the embedded engine before it stopped
    assert after == before
    r = await node.get(url(node, "gwe-identity", identityId="ann@example.com"), headers=AUTH)
    assert r.status == 200, await r.text()


async def test_copy_needs_a_postgresql_target_and_an_existing_file(settings: Settings):
    status, out = await copy("--from", str(settings.db_path), "--to", "postgresql://x/y")
    assert (status, out) == (
        2,
        f"engagement copy-history: {settings.db_path}: no such SQLite file\n",
    )
    status, out = await copy("--from", str(settings.db_path), "--to", "mysql://x/y")
    assert status == 2
    assert "--to postgresql://" in out
