"""Invitations: jinja2 templates from invites/, rendered per engagement attempt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml

from .attempts import Attempt

DEFAULT_LANGUAGE = "en"


class InviteError(Exception):
    """A template is missing or broken; the message says which and why."""


class Invites:
    """The invites/ folder. Templates are re-read when they change (jinja2's auto_reload), so a
    marketer's edit is used by the next invitation; ``strings.yaml`` holds the texts per
    language."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(folder),
            autoescape=True,  # every variable is HTML-escaped: visit data can never inject markup
            auto_reload=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._strings: tuple[float, dict[str, dict[str, str]]] | None = None

    def exists(self, name: str) -> bool:
        """A template of this folder (a bare file name: nothing outside invites/)."""
        path = self.folder / name
        return path.parent == self.folder and not name.startswith(".") and path.is_file()

    def strings(self, language: str) -> dict[str, str]:
        """Texts for a language (``fr-BE`` falls back to ``fr``, then to English)."""
        table = self._load_strings()
        base = dict(table.get(DEFAULT_LANGUAGE, {}))
        lang = language.lower()
        for key in (lang.split("-")[0], lang):
            base.update(table.get(key, {}))
        return base

    def _load_strings(self) -> dict[str, dict[str, str]]:
        path = self.folder / "strings.yaml"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return {}
        if self._strings is None or self._strings[0] != mtime:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            table = {
                str(k).lower(): {str(a): str(b) for a, b in v.items()} for k, v in data.items()
            }
            self._strings = (mtime, table)
        return self._strings[1]

    def render(self, attempt: Attempt, language: str, base_url: str) -> str:
        lang = (language or DEFAULT_LANGUAGE).split("-")[0].lower()
        context: dict[str, Any] = {
            "attempt": attempt.as_json(),
            "params": attempt.params,
            "media": attempt.media,
            "lang": lang,
            "t": self.strings(language or DEFAULT_LANGUAGE),
            "engine": base_url,
        }
        try:
            return self.env.get_template(attempt.invite).render(context)
        except jinja2.TemplateNotFound as exc:
            raise InviteError(
                f"invite template {attempt.invite!r} is not in {self.folder}"
            ) from exc
        except jinja2.TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f"{attempt.invite}:{line}" if line else attempt.invite
            raise InviteError(f"invite template {where}: {exc}") from exc
