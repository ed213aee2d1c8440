"""Loading strategy files: what loads, and errors that say where (line, column) and what to fix."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from engagement.strategy.conditions import Ctx
from engagement.strategy.loader import (
    StrategyError,
    StrategyFileError,
    check_folder,
    load_file,
    load_python_file,
    load_yaml_file,
)

from .helpers import NoFeed, enter, fire, ms, start, visit_with

VALID = """\
categories:
  pricing: [pricing, tarifs]
  support: [help, faq]

events:
  - name: AddToCart
    trigger: click
    selector: "#add"
    values: {price: ".price"}

strategies:
  - name: pricing-dwell
    description: Visitors who read the prices for a while
    priority: 10
    target:
      device: [desktop, tablet]
    when:
      url: /pricing
      time_on_page_s: 30
    schedule:
      timezone: Europe/Paris
      hours:
        mon-fri: "09:00-18:00"
    offer:
      invite: chat.html
      media: chat
      params: {queue: sales}
      timeout_s: 20

  - name: big-cart
    when:
      event: {name: AddToCart, where: {price: {gt: 500}}, count: 2}
    limits: {per_visit: 2, per_visitor: 3, days: 7}
    offer: {invite: callback.html, media: callback}

  - name: switched-off
    enabled: false
    when: {category: support}
    offer: {invite: chat.html, media: chat}

  - name: help-seekers
    when:
      categories_in_sequence: [pricing, support]
    offer: {invite: chat.html, media: chat}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[StrategyError]:
    with pytest.raises(StrategyFileError) as caught:
        load_file(path, path.name)
    return caught.value.errors


def test_valid_file(tmp_path: Path) -> None:
    loaded = load_yaml_file(write(tmp_path, "shop.yaml", VALID), "strategies/shop.yaml")
    assert loaded.categories == {"pricing": ["pricing", "tarifs"], "support": ["help", "faq"]}
    assert [e.name for e in loaded.events] == ["AddToCart"]
    assert loaded.events[0].tracker_config() == {
        "name": "AddToCart",
        "trigger": "click",
        "selector": "#add",
        "values": {"price": ".price"},
    }
    by_name = {s.name: s for s in loaded.strategies}
    assert list(by_name) == ["pricing-dwell", "big-cart", "help-seekers"]  # disabled: not loaded
    dwell, cart = by_name["pricing-dwell"], by_name["big-cart"]
    assert (dwell.source, dwell.line, dwell.priority) == ("strategies/shop.yaml", 12, 10)
    assert dwell.description == "Visitors who read the prices for a while"
    assert dwell.keys == {"page"}
    assert (dwell.offer.invite, dwell.offer.params, dwell.offer.timeout_s) == (
        "chat.html",
        {"queue": "sales"},
        20,
    )
    assert (cart.line, cart.keys, cart.limits.per_visitor, cart.limits.days) == (
        30,
        {"event:AddToCart"},
        3,
        7,
    )
    assert by_name["help-seekers"].keys == {"category:pricing", "category:support"}
    assert {ref for ref, _, _ in loaded.referenced_categories} == {"pricing", "support"}


def test_valid_file_compiles_what_it_says(tmp_path: Path) -> None:
    loaded = load_yaml_file(write(tmp_path, "shop.yaml", VALID))
    cart = next(s for s in loaded.strategies if s.name == "big-cart")
    visit = visit_with(start(0), enter("/cart"), fire("AddToCart", 1, {"price": "600"}))
    assert cart.predicate(Ctx(visit, ms(2), NoFeed())) == (False, None)
    visit = visit_with(
        start(0),
        enter("/cart"),
        fire("AddToCart", 1, {"price": "600"}),
        fire("AddToCart", 2, {"price": 900}),
    )
    assert cart.predicate(Ctx(visit, ms(3), NoFeed())) == (True, None)


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "categories: {}\n"])
def test_empty_files_load(tmp_path: Path, text: str) -> None:
    loaded = load_yaml_file(write(tmp_path, "empty.yaml", text))
    assert (loaded.strategies, loaded.categories, loaded.events) == ([], {}, [])


OFFER = "    offer: {invite: chat.html, media: chat}\n"

ERROR_TABLE = [
    # (file text, [(line, column or None, message or its start)])
    pytest.param(
        "strategies:\n  - name: a\n    when: url: /pricing\n" + OFFER,
        [(3, 14, "YAML: mapping values are not allowed here")],
        id="colon-in-value",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when:\n      url: /pricing\n     offer: x\n",
        [(5, 6, "YAML: expected <block end>")],
        id="bad-indentation",
    ),
    pytest.param(
        "strategies:\n\t- name: a\n",
        [(2, 1, "YAML: found character '\\t'")],
        id="tab",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing\n" + OFFER,
        [(4, 10, "YAML: expected ',' or '}'")],
        id="unclosed-flow",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    priorty: 5\n    when: {url: /pricing}\n" + OFFER,
        [(3, 5, "unknown key 'priorty': did you mean 'priority'?")],
        id="unknown-key",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when:\n      url: /pricing\n      time_on_pag_s: 30\n"
        + OFFER,
        [(5, 7, "unknown key 'time_on_pag_s': did you mean 'time_on_page_s'?")],
        id="unknown-condition-key",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when:\n      url: /pricing\n    ofer:\n"
        "      invite: chat.html\n      media: chat\n",
        [
            (2, None, "'offer' is required here"),
            (5, 5, "unknown key 'ofer': did you mean 'offer'?"),
        ],
        id="unknown-key-with-block-value",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing}\n",
        [(2, None, "'offer' is required here")],
        id="missing-offer",
    ),
    pytest.param(
        "strategies:\n  - name: a\n" + OFFER,
        [(2, None, "'when' is required here")],
        id="missing-when",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when:\n      url: {regex: 'pric(ing'}\n" + OFFER,
        [(4, None, "strategies.when.url: regex 'pric(ing' is not valid")],
        id="bad-regex",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing}\n    schedule:\n"
        "      timezone: Europe/Pariss\n" + OFFER,
        [(5, 17, "strategies.schedule.timezone: unknown time zone 'Europe/Pariss'")],
        id="bad-time-zone",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing}\n    schedule:\n"
        "      timezone: Europe/Paris\n      hours:\n        mon-fri: '9h-18h'\n" + OFFER,
        [(7, None, "strategies.schedule.hours: '9h-18h': write hours as HH:MM-HH:MM")],
        id="bad-hours",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing}\n    schedule:\n"
        "      hours:\n        weekdays: '09:00-18:00'\n" + OFFER,
        [(6, None, "strategies.schedule.hours: 'weekdays': days are mon")],
        id="bad-days",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing}\n"
        + OFFER
        + "  - name: b\n    when: {url: /cart}\n"
        + OFFER
        + "  - name: a\n    when: {url: /checkout}\n"
        + OFFER,
        [(8, 1, "strategy name 'a' is used twice")],
        id="duplicate-name",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing}\n    offer:\n"
        "      invite: ../secret.html\n      media: chat\n",
        [(5, 15, "strategies.offer.invite: invite '../secret.html' must be a file name")],
        id="bad-invite",
    ),
    pytest.param(
        "- name: a\n",
        [(1, 1, "a strategy file holds a mapping with categories, events, strategies")],
        id="top-level-list",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    when: {url: /pricing}\n  - name: b b\n"
        "    when: {url: /x}\n    offer: {invite: chat.html, media: fax}\n",
        [
            (2, None, "'offer' is required here"),
            (4, 11, "strategies.name: String should match pattern"),
            (6, None, "strategies.offer.media: Input should be 'chat', 'callback' or 'custom'"),
        ],
        id="every-error-at-once",
    ),
    pytest.param(
        "strategies:\n  - name: a\n    target:\n      user: {tier: {like: gold}}\n"
        "    when: {url: /pricing}\n" + OFFER,
        [(4, 27, "strategies.target.user.tier.like.[key]: Input should be 'eq', 'ne',")],
        id="user-condition-unknown-operator",
    ),
    pytest.param(
        "events:\n  - name: Buy\n    trigger: click\n",
        [(2, None, "events: trigger click needs a selector")],
        id="declared-event",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ERROR_TABLE)
def test_errors_say_where_and_what(
    tmp_path: Path, text: str, expected: list[tuple[int, int | None, str]]
) -> None:
    errors = errors_of(write(tmp_path, "bad.yaml", text))
    got = [
        (e.line, e.column if col is not None else None, e.message[: len(msg)])
        for e, (_, col, msg) in zip(errors, expected, strict=False)
    ]
    assert got == expected, [str(e) for e in errors]
    assert len(errors) == len(expected), [str(e) for e in errors]
    assert all(e.file == "bad.yaml" for e in errors)


def test_error_formats() -> None:
    error = StrategyError("strategies/a.yaml", 3, 14, "YAML: oops")
    assert str(error) == "strategies/a.yaml:3:14: YAML: oops"
    assert str(StrategyError("strategies/a.yaml", 0, 0, "cannot read")) == (
        "strategies/a.yaml: cannot read"
    )
    assert error.as_json() == {
        "file": "strategies/a.yaml",
        "line": 3,
        "column": 14,
        "message": "YAML: oops",
    }


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("strategies: []\n# caf\xe9\n".encode("latin-1"))
    (error,) = errors_of(path)
    assert (error.line, error.message.startswith("cannot read the file")) == (0, True)


# -- a folder --

CATEGORIES = """\
categories:
  pricing: [pricing, tarifs]
  support: [help]
"""
GOOD = """\
strategies:
  - name: good
    when: {category: pricing}
    offer: {invite: chat.html, media: chat}
"""
UNDEFINED_CATEGORY = """\
strategies:
  - name: seq
    when:
      url: /cart
      categories_in_sequence: [pricing, pricng]
    offer: {invite: chat.html, media: chat}
"""


def test_check_folder_keeps_the_good_files(tmp_path: Path) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    write(folder, "categories.yaml", CATEGORIES)
    write(folder, "good.yaml", GOOD)
    write(folder, "typo.yaml", UNDEFINED_CATEGORY)
    write(folder, "broken.yml", "strategies:\n  - name: x\n    when: url: /a\n")
    write(folder, "notes.txt", "not a strategy file")
    write(folder, "_draft.yaml", "this: [is not loaded")
    write(folder, ".hidden.yaml", "neither: [is this")
    strategies, errors = check_folder(folder)
    assert [s.name for s in strategies.strategies] == ["good"]
    assert strategies.categories == {"pricing": ["pricing", "tarifs"], "support": ["help"]}
    assert strategies.categorize("https://shop.example/fr/tarifs", "") == ["pricing"]
    by_file = {e.file: e for e in errors}
    assert sorted(by_file) == ["strategies/broken.yml", "strategies/typo.yaml"]
    typo = by_file["strategies/typo.yaml"]
    assert typo.message == "category 'pricng' is not defined in any file: did you mean 'pricing'?"
    assert (typo.line, typo.column) == (5, 41)  # where the name is written
    assert by_file["strategies/broken.yml"].line == 3


def test_check_folder_undefined_category_without_a_near_name(tmp_path: Path) -> None:
    write(tmp_path, "only.yaml", GOOD.replace("pricing", "garden"))
    strategies, errors = check_folder(tmp_path)
    assert len(strategies) == 0
    assert [e.message for e in errors] == [
        "category 'garden' is not defined in any file (add it under `categories:`)"
    ]


def test_check_folder_strategy_name_used_in_two_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", CATEGORIES + GOOD)
    write(tmp_path, "b.yaml", "\n" + GOOD.replace("pricing", "support"))
    strategies, errors = check_folder(tmp_path)
    assert [(s.name, s.source) for s in strategies.strategies] == [
        ("good", f"{tmp_path.name}/a.yaml")
    ]
    (error,) = errors
    assert (error.file, error.line) == (f"{tmp_path.name}/b.yaml", 3)
    assert error.message == f"strategy name 'good' is already used in {tmp_path.name}/a.yaml"


def test_check_folder_of_a_missing_folder(tmp_path: Path) -> None:
    strategies, errors = check_folder(tmp_path / "nowhere")
    assert (len(strategies), errors) == (0, [])


def test_category_key_in_offer_params_is_not_a_category(tmp_path: Path) -> None:
    # `params: {category: premium}` is free data for the media side, not a category reference.
    write(
        tmp_path,
        "a.yaml",
        """\
        strategies:
          - name: vip
            when: {url: /pricing}
            offer:
              invite: chat.html
              media: chat
              params: {category: premium}
        """,
    )
    strategies, errors = check_folder(tmp_path)
    assert ([s.name for s in strategies.strategies], errors) == (["vip"], [])


# -- Python strategy files --

PYTHON_STRATEGIES = """\
from engagement.strategy.schema import Offer


class BigSpender:
    \"\"\"A cart above 1000.\"\"\"

    name = "big-spender"
    priority = 20
    triggers = frozenset({"event:CartUpdated"})
    offer = Offer(invite="chat.html", media="chat")

    def evaluate(self, visit, now_ms):
        carts = visit.events_by_name.get("CartUpdated", [])
        return bool(carts) and float(carts[-1].data.get("total", 0)) > 1000


strategies = [BigSpender()]
"""


def test_python_file(tmp_path: Path) -> None:
    path = write(tmp_path, "spenders.py", PYTHON_STRATEGIES)
    loaded = load_python_file(path, "strategies/spenders.py")
    (s,) = loaded.strategies
    assert (s.name, s.priority, s.keys, s.source, s.description) == (
        "big-spender",
        20,
        {"event:CartUpdated"},
        "strategies/spenders.py",
        "A cart above 1000.",
    )
    visit = visit_with(start(0), enter("/cart"), fire("CartUpdated", 1, {"total": 1500}))
    assert s.predicate(Ctx(visit, ms(2), NoFeed())) == (True, None)
    assert load_file(path).strategies[0].name == "big-spender"  # by its suffix


def test_python_file_in_a_folder_with_yaml(tmp_path: Path) -> None:
    write(tmp_path, "spenders.py", PYTHON_STRATEGIES)
    write(tmp_path, "shop.yaml", CATEGORIES + GOOD)
    write(tmp_path, "_helpers.py", "raise RuntimeError('helpers are not strategy files')\n")
    strategies, errors = check_folder(tmp_path)
    assert errors == []
    assert [s.name for s in strategies.strategies] == ["big-spender", "good"]


PYTHON_ERRORS = [
    pytest.param(
        "import os\n\nx = 1\nraise RuntimeError('boom')\nstrategies = []\n",
        4,
        "RuntimeError: boom",
        id="raises-at-import",
    ),
    pytest.param(
        "def helper():\n    return {}['missing']\n\n\nvalue = helper()\n",
        2,
        "KeyError: 'missing'",
        id="raises-in-a-function",  # where it raised
    ),
    pytest.param(
        "x = 1\ny = (\nstrategies = []\n",
        2,
        "SyntaxError",
        id="syntax-error",
    ),
    pytest.param(
        "import engagement_no_such_module\n",
        1,
        "ModuleNotFoundError: No module named 'engagement_no_such_module'",
        id="bad-import",
    ),
    pytest.param("x = 1\n", 1, "define `strategies = [...]`", id="no-strategies"),
    pytest.param("strategies = 'all'\n", 1, "define `strategies = [...]`", id="not-a-list"),
    pytest.param("strategies = [object()]\n", 1, "<object object at", id="not-a-strategy"),
]


@pytest.mark.parametrize(("text", "line", "message"), PYTHON_ERRORS)
def test_python_file_errors(tmp_path: Path, text: str, line: int, message: str) -> None:
    (error,) = errors_of(write(tmp_path, "mine.py", text))
    assert (error.file, error.line, error.message[: len(message)]) == ("mine.py", line, message)
