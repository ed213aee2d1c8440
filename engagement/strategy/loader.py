"""Reading strategies/ into a StrategySet, with errors a marketer can act on.

Every problem is reported with file, line, column and what to fix. A file with a mistake keeps
its last good version running; the other files are not affected.
"""

from __future__ import annotations

import difflib
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .conditions import (
    Pred,
    all_of,
    availability_pred,
    compile_condition,
    schedule_pred,
    trigger_keys,
)
from .engine import CompiledStrategy, PythonStrategy, StrategySet, from_python
from .experiment import compile_experiment
from .schema import CONDITION_KEYS, StrategyFile, StrategySpec

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, slots=True)
class StrategyError:
    """A mistake in a strategy file, where it is and what to do about it."""

    file: str
    line: int  # 1-based; 0 when the whole file is concerned
    column: int
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.message}"

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
        }


class StrategyFileError(Exception):
    def __init__(self, errors: list[StrategyError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


@dataclass(slots=True)
class LoadedFile:
    path: Path
    categories: dict[str, list[str]] = field(default_factory=dict)
    strategies: list[CompiledStrategy] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    referenced_categories: list[tuple[str, int, int]] = field(default_factory=list)


# -- where a pydantic error points in the YAML text --


def _locate(
    node: yaml.Node | None, loc: tuple[int | str, ...], want_key: bool = False
) -> yaml.Node | None:
    """The deepest YAML node along a pydantic error location (the key itself if wanted)."""
    for i, part in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            pair = next(
                (kv for kv in node.value if getattr(kv[0], "value", None) == str(part)), None
            )
            if pair is None:
                return node
            key_node: yaml.Node = pair[0]
            if want_key and i == len(loc) - 1:
                return key_node
            node = pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return node
            node = node.value[part]
        else:
            return node
    return node


def _known_keys() -> set[str]:
    keys = set(CONDITION_KEYS)
    for model in (StrategyFile, StrategySpec):
        keys |= set(model.model_fields)
    from . import schema

    for obj in vars(schema).values():
        if isinstance(obj, type) and issubclass(obj, BaseModel):
            keys |= {f.alias or name for name, f in obj.model_fields.items()}
    return keys


_KNOWN = _known_keys()


def _message(err: dict[str, Any]) -> str:
    loc = err["loc"]
    where = ".".join(str(p) for p in loc if not isinstance(p, int) and p not in ("match",))
    kind = err["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        hint = difflib.get_close_matches(key, _KNOWN, n=1)
        return f"unknown key '{key}'" + (f": did you mean '{hint[0]}'?" if hint else "")
    if kind == "missing":
        return f"'{loc[-1]}' is required here"
    msg = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def _errors_from_validation(
    exc: ValidationError, root: yaml.Node | None, file: str
) -> list[StrategyError]:
    found = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        node = _locate(root, loc, want_key=err["type"] == "extra_forbidden")
        mark = node.start_mark if node is not None else None
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        found.append(StrategyError(file, line, col, _message({**err, "loc": loc})))
    return found


def compile_spec(spec: StrategySpec, source: str, line: int) -> CompiledStrategy:
    conditions = [c for c in (spec.target, spec.when) if c is not None]
    preds = [compile_condition(c) for c in conditions]
    gates: list[tuple[str, Pred]] = []
    if spec.schedule is not None:
        gates.append(("schedule: outside its hours", schedule_pred(spec.schedule)))
    if spec.availability is not None:
        gates.append(
            (f"availability: group {spec.availability.group} closed or too few agents ready",
             availability_pred(spec.availability))
        )  # fmt: skip
    keys: set[str] = set()
    for c in conditions:
        keys |= trigger_keys(c)
    return CompiledStrategy(
        name=spec.name, priority=spec.priority, keys=frozenset(keys),
        predicate=all_of(preds + [gate for _, gate in gates]),
        conditions=all_of(preds) if gates else None, gates=tuple(gates), offer=spec.offer,
        limits=spec.limits, decide=spec.decide, source=source, line=line,
        description=spec.description, experiment=compile_experiment(spec),
        availability=spec.availability,
    )  # fmt: skip


def _category_refs(node: yaml.Node) -> list[tuple[str, int, int]]:
    """Category names a strategy mentions, with where they are written."""
    found: list[tuple[str, int, int]] = []

    def add(n: yaml.Node) -> None:
        if isinstance(n, yaml.ScalarNode):
            found.append((str(n.value), n.start_mark.line + 1, n.start_mark.column + 1))

    def walk(n: yaml.Node) -> None:
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = getattr(k, "value", None)
                if key == "category":
                    name = _locate(v, ("name",)) if isinstance(v, yaml.MappingNode) else v
                    if name is not None:
                        add(name)
                elif key in ("categories_all", "categories_in_sequence") and isinstance(
                    v, yaml.SequenceNode
                ):
                    for item in v.value:
                        add(item)
                else:
                    walk(v)
        elif isinstance(n, yaml.SequenceNode):
            for item in n.value:
                walk(item)

    walk(node)
    return found


def load_yaml_file(path: Path, display: str | None = None) -> LoadedFile:
    """Parse and validate one file; raises StrategyFileError with every problem found."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StrategyFileError(
            [StrategyError(name, 0, 0, f"cannot read the file: {exc}")]
        ) from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or "not valid YAML"
        hint = " (check the indentation and that every ':' is followed by a space)"
        raise StrategyFileError([StrategyError(name, line, col, f"YAML: {problem}{hint}")]) from exc
    try:
        parsed = StrategyFile.model_validate(data)
    except ValidationError as exc:
        raise StrategyFileError(_errors_from_validation(exc, root, name)) from exc

    loaded = LoadedFile(path, categories={k: list(v) for k, v in parsed.categories.items()},
                        events=list(parsed.events))  # fmt: skip
    seen: set[str] = set()
    errors = []
    for i, spec in enumerate(parsed.strategies):
        node = _locate(root, ("strategies", i))
        line = node.start_mark.line + 1 if node is not None else 0
        if spec.name in seen:
            errors.append(
                StrategyError(name, line, 1, f"strategy name '{spec.name}' is used twice")
            )
        seen.add(spec.name)
        if not spec.enabled:
            continue
        loaded.strategies.append(compile_spec(spec, name, line))
        for part in ("target", "when"):  # not offer.params: a `category` there is data
            sub = _locate(root, ("strategies", i, part))
            if sub is not None and sub is not node:
                loaded.referenced_categories.extend(_category_refs(sub))
    if errors:
        raise StrategyFileError(errors)
    return loaded


def load_python_file(path: Path, display: str | None = None) -> LoadedFile:
    """Import a module that defines ``strategies = [...]`` (PythonStrategy objects)."""
    name = display or str(path)
    module_name = f"engagement_strategies_{path.stem}_{abs(hash(path))}"
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError("not a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        line = getattr(exc, "lineno", None) or _traceback_line(exc, path)
        raise StrategyFileError(
            [StrategyError(name, line, getattr(exc, "offset", None) or 1,
                           f"{type(exc).__name__}: {exc}")]
        ) from exc  # fmt: skip
    finally:
        sys.modules.pop(module_name, None)
    found = getattr(module, "strategies", None)
    if not isinstance(found, list | tuple):
        raise StrategyFileError([StrategyError(name, 1, 1, "define `strategies = [...]`")])
    loaded = LoadedFile(path)
    for obj in found:
        if not isinstance(obj, PythonStrategy):
            message = f"{obj!r} lacks name, priority, triggers, offer or evaluate()"
            raise StrategyFileError([StrategyError(name, 1, 1, message)])
        loaded.strategies.append(from_python(obj, name))
    return loaded


def _traceback_line(exc: BaseException, path: Path) -> int:
    tb = exc.__traceback__
    line = 1
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == str(path):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def load_file(path: Path, display: str | None = None) -> LoadedFile:
    if path.suffix == ".py":
        return load_python_file(path, display)
    return load_yaml_file(path, display)


def strategy_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (*SUFFIXES, ".py") and not p.name.startswith((".", "_"))
    )


def invite_templates(invites: Path) -> list[str]:
    """The template names in the invites/ folder."""
    if not invites.is_dir():
        return []
    return sorted(p.name for p in invites.iterdir() if p.is_file() and p.suffix == ".html")


def cross_check(
    files: dict[Path, LoadedFile], root: Path, invites: Path | None = None
) -> dict[Path, list[StrategyError]]:
    """Problems between files: unknown categories, a strategy name defined twice, and (when
    the invites/ folder is given) an offer naming no template in it."""
    categories = {c for f in files.values() for c in f.categories}
    templates = invite_templates(invites) if invites is not None and invites.is_dir() else None
    owners: dict[str, Path] = {}
    problems: dict[Path, list[StrategyError]] = {}
    for path, f in sorted(files.items()):
        shown = _display(path, root)
        for ref, line, col in f.referenced_categories:
            if ref not in categories:
                hint = difflib.get_close_matches(ref, categories, n=1)
                msg = f"category '{ref}' is not defined in any file" + (
                    f": did you mean '{hint[0]}'?" if hint else " (add it under `categories:`)"
                )
                problems.setdefault(path, []).append(StrategyError(shown, line, col, msg))
        for s in f.strategies:
            named = [("offer.invite", s.offer.invite)]
            if s.experiment is not None:  # each variant may name its own template
                named += [(f"variants.{a.name}.invite", a.offer.invite) for a in s.experiment.arms
                          if a.offer.invite != s.offer.invite]  # fmt: skip
            for where, invite in named:
                if templates is None or invite in templates:
                    continue
                hint = difflib.get_close_matches(invite, templates, n=1)
                msg = f"{where}: no template '{invite}' in invites/" + (
                    f": did you mean '{hint[0]}'?"
                    if hint
                    else f" (there: {', '.join(templates) or 'nothing'})"
                )
                problems.setdefault(path, []).append(StrategyError(shown, s.line, 1, msg))
            other = owners.setdefault(s.name, path)
            if other != path:
                message = f"strategy name '{s.name}' is already used in {_display(other, root)}"
                problems.setdefault(path, []).append(StrategyError(shown, s.line, 1, message))
    return problems


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root.parent)) if root.parent != path else str(path)
    except ValueError:
        return str(path)


def build_set(files: dict[Path, LoadedFile]) -> StrategySet:
    strategies = [s for f in files.values() for s in f.strategies]
    categories: dict[str, list[str]] = {}
    for f in files.values():
        for name, tags in f.categories.items():
            categories.setdefault(name, []).extend(tags)
    events = [e for f in files.values() for e in f.events]
    return StrategySet(strategies, categories, events)


def check_folder(
    folder: Path, invites: Path | None = None
) -> tuple[StrategySet, list[StrategyError]]:
    """Load every file in ``folder``; the set of the good ones and every error (offers are
    checked against the templates in ``invites`` when it is given)."""
    files: dict[Path, LoadedFile] = {}
    errors: list[StrategyError] = []
    for path in strategy_files(folder):
        try:
            files[path] = load_file(path, _display(path, folder))
        except StrategyFileError as exc:
            errors.extend(exc.errors)
    for path, problems in cross_check(files, folder, invites).items():
        errors.extend(problems)
        del files[path]
    return build_set(files), errors
