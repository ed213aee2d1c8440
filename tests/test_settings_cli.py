from __future__ import annotations

import asyncio
import gzip
import os
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, unused_port

from engagement.cli import main
from engagement.settings import Settings, load_settings

from .conftest import url


def test_toml_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "engagement.toml"
    config.write_text('port = 9500\nallowed_origins = ["https://www.shop.com"]\n'
                      'api_keys = ["from-file"]\n')  # fmt: skip
    monkeypatch.setenv("ENGAGEMENT_API_KEYS", '["from-env"]')
    settings = load_settings(config)
    assert settings.port == 9500
    assert settings.allowed_origins == ["https://www.shop.com"]
    assert settings.api_keys == ["from-env"]


def test_bad_setting_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    config = tmp_path / "engagement.toml"
    config.write_text('allowed_origins = ["www.shop.com"]\n')
    assert main(["--config", str(config), "api-key"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "engagement: invalid settings:\n"
        "  allowed_origins: Value error, origin 'www.shop.com' needs a scheme, "
        "e.g. 'https://www.shop.com'\n"
    )


def test_api_key_prints_the_key_serve_generated(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data = tmp_path / "data"
    key = Settings(data_dir=data).generate_api_key()  # what serve does on its first start
    assert key is not None
    assert len(key) >= 40
    assert (data / "api-key").stat().st_mode & 0o777 == 0o600
    assert Settings(data_dir=data).generate_api_key() is None  # once

    assert main(["api-key", "--data-dir", str(data)]) == 0
    assert capsys.readouterr().out == key + "\n"


async def test_tracker_is_served_small_configured_and_cached(client: TestClient[Any, Any]):
    r = await client.get(
        url(client, "tracker"), headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert r.status == 200
    assert r.headers["Content-Encoding"] == "gzip"
    assert r.headers["Content-Type"].startswith("application/javascript")
    body = await r.read()
    assert len(body) < 8 * 1024
    script = gzip.decompress(body).decode()
    assert "__ENGAGEMENT_CONFIG__" not in script
    assert '"visitTimeoutS":1800' in script
    r = await client.get(url(client, "tracker"), headers={"If-None-Match": r.headers["ETag"]})
    assert r.status == 304
    # The invitation part comes with the first invitation only.
    r = await client.get(
        url(client, "engage-script"), headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert r.status == 200
    assert len(await r.read()) < 4 * 1024
    assert "WebChat.open" in gzip.decompress(await r.read()).decode()


async def test_serve_starts_with_no_configuration(tmp_path: Path):
    """What a new user runs: `engagement serve` in an empty folder."""
    port = unused_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGAGEMENT_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engagement", "serve", "--port", str(port),
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        banner = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert f"on http://localhost:{port}" in banner
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.get(f"http://127.0.0.1:{port}/demo/") as r:
                        assert r.status == 200
                        assert "/tracker.js" in await r.text()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            else:
                pytest.fail("engine did not answer")
        assert (tmp_path / "data" / "engagement.sqlite3").exists()
        assert (tmp_path / "data" / "api-key").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
