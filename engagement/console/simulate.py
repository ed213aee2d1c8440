"""The console's dry run: a draft strategies folder (uploaded, or a folder on the server) is
checked like ``engagement check`` and replayed over the recorded visits, like
``engagement simulate``; the result is a table and a chart."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_request import FileField
from pydantic import BaseModel, Field, ValidationError, field_validator

from ..api.parsing import read_form
from ..api.state import HISTORY, SETTINGS
from ..experiments.simulate import DAY_MS, DryRun, dry_run
from ..monitoring.ingest import now_ms
from ..strategy.loader import SUFFIXES, check_folder
from .chart import dry_run_chart
from .login import csrf_refused
from .session import CSRF_FIELD, check_csrf
from .templating import render

MAX_FILES = 50  # an uploaded draft folder, at most this many YAML files
MAX_DAYS = 90  # the longest period a dry run replays from the console


class SimulateForm(BaseModel):
    folder: str = Field("", max_length=1000, description="a folder on the server")
    days: int = Field(7, ge=1, le=MAX_DAYS, description="days replayed, up to the end day")
    until: dt.date | None = Field(None, description="last UTC day replayed (default: today)")

    @field_validator("until", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return None if value == "" else value


def _context(form: dict[str, str], **more: Any) -> dict[str, Any]:
    return {"form": form, "errors": [], "run": None, "chart": None, "error": None, **more}


async def simulate_form(request: web.Request) -> web.StreamResponse:
    """The dry-run form: upload a draft folder's files or name a folder on the server."""
    form = {"folder": "", "days": "7", "until": ""}
    return render(request, "simulate.html", _context(form))


async def _read_form(request: web.Request, into: Path) -> tuple[dict[str, str], list[str]]:
    """The text fields, and the uploaded YAML files written into ``into`` (names only); the
    body is bounded by ``max_body_bytes`` like every other."""
    fields: dict[str, str] = {}
    saved: list[str] = []
    for key, value in (await read_form(request)).items():
        if isinstance(value, str):
            fields[key] = value[:2000]
            continue
        if not isinstance(value, FileField):
            continue
        name = Path(value.filename or "").name
        if not name.endswith(SUFFIXES) or name.startswith((".", "_")):
            continue
        if len(saved) >= MAX_FILES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_FILES, actual_size=len(saved) + 1)
        (into / name).write_bytes(value.file.read())
        saved.append(name)
    return fields, saved


async def simulate_run(request: web.Request) -> web.StreamResponse:
    """Check the draft like `engagement check`, then replay the period through it."""
    with tempfile.TemporaryDirectory(prefix="dry-run-") as tmp:
        draft_dir = Path(tmp) / "draft"
        draft_dir.mkdir()
        fields, uploaded = await _read_form(request, draft_dir)
        form = {k: fields.get(k, "") for k in ("folder", "days", "until")}
        if not check_csrf(request, fields.get(CSRF_FIELD, "")):
            return csrf_refused(request)
        try:
            choice = SimulateForm.model_validate(form)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            message = f"{error['loc'][0]}: {error['msg']}"
            return render(request, "simulate.html", _context(form, error=message), status=400)
        if not uploaded:
            problem = _copy_yaml(choice.folder.strip(), draft_dir)
            if problem:
                return render(request, "simulate.html", _context(form, error=problem), status=400)
        settings = request.app[SETTINGS]
        draft, errors = check_folder(draft_dir, settings.invites_dir)  # as `check` does
        if errors:
            shown = [str(e) for e in errors]
            return render(request, "simulate.html", _context(form, errors=shown), status=400)
        last = choice.until or dt.datetime.now(dt.UTC).date()
        until = int(dt.datetime(last.year, last.month, last.day, tzinfo=dt.UTC).timestamp())
        until = min(until * 1000 + DAY_MS, now_ms())
        since = until - choice.days * DAY_MS
        run: DryRun = await dry_run(request.app[HISTORY], draft, since, until,
                                    settings.visit_timeout_s, settings.strict_mode)  # fmt: skip
    context = _context(form, run=run, chart=dry_run_chart(run), files=uploaded)
    return render(request, "simulate.html", context)


def _copy_yaml(folder: str, into: Path) -> str | None:
    """Copy a server folder's YAML files (never its Python: the console runs no code)."""
    if not folder:
        return "Upload the draft's files, or name a folder on the server."
    source = Path(folder)
    if not source.is_dir():
        return f"{folder}: no such folder on the server."
    found = [p for p in sorted(source.iterdir()) if p.is_file() and p.suffix in SUFFIXES]
    for path in found[:MAX_FILES]:
        if not path.name.startswith((".", "_")):
            shutil.copyfile(path, into / path.name)
    return None if found else f"{folder}: no strategy file (.yaml) in it."
