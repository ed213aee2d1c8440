"""Conditions compiled to predicates: (holds, due) for real visits at an explicit time.

Each table row: condition (YAML text or dict), the visit's events, now (s after T0), the
expected holds, and the expected due (s after T0) or None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from engagement.availability import AvailabilityBoard, GroupState, WhenStale
from engagement.strategy.conditions import (
    AVAILABILITY_RECHECK_MS,
    Ctx,
    availability_pred,
    compile_condition,
    schedule_pred,
    trigger_keys,
)
from engagement.strategy.schema import Availability, Schedule

from .helpers import (
    ANDROID_PHONE,
    ANDROID_TABLET,
    DESKTOP,
    IPAD,
    IPHONE,
    condition,
    enter,
    epoch_ms,
    fire,
    leave,
    ms,
    start,
    verdict,
    visit_with,
)

ON_PRICING = [start(0), enter("/pricing", 0, title="Pricing - Shop")]
ON_ABOUT = [start(0), enter("/about", 0, title="About us")]


def on(path: str, title: str = "") -> list[Any]:
    return [start(0), enter(path, 0, title=title)]


def check(cond: Any, steps: list[Any], now: float, holds: bool, due: float | None) -> None:
    assert verdict(cond, visit_with(*steps), now) == (holds, due)


# -- url and title --

URL_TABLE = [
    # plain string = contains, case-insensitive
    ("url: /pricing", ON_PRICING, True),
    ("url: /PRICING", ON_PRICING, True),
    ("url: /pricing", ON_ABOUT, False),
    ("url: {contains: PRIC}", ON_PRICING, True),
    # equals: the whole URL, any case
    ("url: {equals: 'https://shop.example/pricing'}", ON_PRICING, True),
    ("url: {equals: 'HTTPS://SHOP.EXAMPLE/Pricing'}", ON_PRICING, True),
    ("url: {equals: 'https://shop.example/pricing'}", on("/pricing?plan=pro"), False),
    ("url: {equals: 'https://shop.example/pric'}", ON_PRICING, False),
    # wildcard: * and ? over the whole URL
    ("url: {wildcard: '*/pricing'}", ON_PRICING, True),
    ("url: {wildcard: '*/pr?cing'}", ON_PRICING, True),
    ("url: {wildcard: '*/PRICING'}", ON_PRICING, True),
    ("url: {wildcard: 'https://shop.example/*/checkout'}", on("/fr/checkout"), True),
    ("url: {wildcard: 'https://shop.example/*/checkout'}", on("/fr/checkout/2"), False),
    ("url: {wildcard: '/pricing'}", ON_PRICING, False),  # not anchored on a part: no match
    # regex: searched anywhere, any case
    ("url: {regex: 'pric(e|ing)$'}", ON_PRICING, True),
    ("url: {regex: '/P[a-z]+G'}", ON_PRICING, True),
    ("url: {regex: '^/pricing'}", ON_PRICING, False),
    ("url: {regex: 'product/\\d+'}", on("/product/42"), True),
    ("url: {regex: 'product/\\d+'}", on("/product/tv"), False),
    # list = any of
    ("url: [/plans, /pricing]", ON_PRICING, True),
    ("url: [/plans, {equals: 'https://shop.example/about'}]", ON_ABOUT, True),
    ("url: [/plans, /cart]", ON_PRICING, False),
    # match + exclude
    ("url: {match: /product, exclude: [/product/free]}", on("/product/tv"), True),
    ("url: {match: /product, exclude: [/product/free]}", on("/product/free-trial"), False),
    ("url: {match: [/product], exclude: [{regex: 'FREE'}]}", on("/product/free"), False),
    ("url: {exclude: [/checkout]}", ON_PRICING, True),
    ("url: {exclude: [/checkout]}", on("/checkout"), False),
    # title
    ("title: pricing", ON_PRICING, True),
    ("title: {equals: 'pricing - shop'}", ON_PRICING, True),
    ("title: {equals: 'pricing'}", ON_PRICING, False),
    ("title: {wildcard: '* - Shop'}", ON_PRICING, True),
    ("title: {match: [pricing], exclude: [shop]}", ON_PRICING, False),
    ("title: pricing", ON_ABOUT, False),
]


@pytest.mark.parametrize(("cond", "steps", "holds"), URL_TABLE)
def test_url_and_title(cond: str, steps: list[Any], holds: bool) -> None:
    check(cond, steps, 1, holds, None)


def test_url_is_the_current_page() -> None:
    steps = [start(0), enter("/pricing", 0), enter("/about", 5)]
    check("url: /pricing", steps, 6, False, None)
    check("url: /about", steps, 6, True, None)


# -- where the visitor came from --

TWO_PAGES_FROM_GOOGLE = [
    start(0),
    enter("/", 0, referrer="https://www.google.com/search?q=tv", utm={"source": "Newsletter"}),
    enter("/pricing", 5, referrer="https://shop.example/", utm={"campaign": "Spring-Sale"}),
]
DIRECT_THEN_GOOGLE = [
    start(0),
    enter("/", 0, referrer=""),
    enter("/pricing", 5, referrer="https://www.google.com/"),
]

ORIGIN_TABLE = [
    # referrer: the landing page's, not the current page's
    ("referrer: google.", TWO_PAGES_FROM_GOOGLE, True),
    ("referrer: shop.example", TWO_PAGES_FROM_GOOGLE, False),
    ("referrer: {regex: '^https://(www\\.)?google\\.'}", TWO_PAGES_FROM_GOOGLE, True),
    ("referrer: google.", DIRECT_THEN_GOOGLE, False),
    # utm: any page of the visit
    ("utm: {source: newsletter}", TWO_PAGES_FROM_GOOGLE, True),
    ("utm: {campaign: spring}", TWO_PAGES_FROM_GOOGLE, True),
    ("utm: {campaign: {equals: spring}}", TWO_PAGES_FROM_GOOGLE, False),
    ("utm: {campaign: {equals: spring-sale}}", TWO_PAGES_FROM_GOOGLE, True),
    ("utm: {source: newsletter, campaign: spring}", TWO_PAGES_FROM_GOOGLE, True),
    ("utm: {source: newsletter, medium: email}", TWO_PAGES_FROM_GOOGLE, False),
    ("utm: {source: newsletter}", DIRECT_THEN_GOOGLE, False),
]


@pytest.mark.parametrize(("cond", "steps", "holds"), ORIGIN_TABLE)
def test_referrer_and_utm(cond: str, steps: list[Any], holds: bool) -> None:
    check(cond, steps, 10, holds, None)


# -- who the visitor is --

VISITOR_TABLE = [
    ("language: fr", [start(0, lang="fr-FR"), enter("/", 0, lang="fr-FR")], True),
    ("language: fr", [start(0, lang="fr"), enter("/", 0, lang="fr")], True),
    ("language: [de, en-GB]", [start(0), enter("/", 0, lang="en-GB")], True),
    ("language: [EN-gb]", [start(0), enter("/", 0, lang="en-GB")], True),
    ("language: en", [start(0), enter("/", 0, lang="en-US")], True),
    ("language: en-US", [start(0), enter("/", 0, lang="en-GB")], False),
    ("language: fr", [start(0), enter("/", 0, lang="de-CH")], False),
    ("device: mobile", [start(0, ua=IPHONE), enter("/")], True),
    ("device: mobile", [start(0, ua=ANDROID_PHONE), enter("/")], True),
    ("device: tablet", [start(0, ua=IPAD), enter("/")], True),
    ("device: tablet", [start(0, ua=ANDROID_TABLET), enter("/")], True),
    ("device: mobile", [start(0, ua=IPAD), enter("/")], False),
    ("device: desktop", [start(0, ua=DESKTOP), enter("/")], True),
    ("device: [mobile, tablet]", [start(0, ua=DESKTOP), enter("/")], False),
    ("device: [mobile, tablet]", [start(0, ua=ANDROID_TABLET), enter("/")], True),
    ("device: desktop", [enter("/")], True),  # no VisitStarted seen: desktop
    ("visitor: new", [start(0, returning=False), enter("/")], True),
    ("visitor: returning", [start(0, returning=False), enter("/")], False),
    ("visitor: returning", [start(0, returning=True), enter("/")], True),
    ("visitor: new", [start(0, returning=True), enter("/")], False),
    ("identity: anonymous", [start(0), enter("/")], True),
    ("identity: recognized", [start(0), enter("/")], False),
    ("identity: recognized", [start(0), enter("/"), fire("UserInfo", 1, {"email": "a@b"})], True),
    ("identity: authenticated", [start(0), enter("/"), fire("UserInfo", 1)], False),
    ("identity: authenticated", [start(0), enter("/"), fire("SignIn", 1, {"id": "7"})], True),
    (
        "identity: [recognized, authenticated]",
        [start(0), enter("/"), fire("SignIn", 1), fire("UserInfo", 2)],
        True,
    ),
    (
        "identity: authenticated",
        [start(0), enter("/"), fire("SignIn", 1), fire("UserInfo", 2)],
        True,  # UserInfo does not downgrade a signed-in visitor
    ),
    ("identity: anonymous", [start(0), enter("/"), fire("SignIn", 1), fire("SignOut", 2)], False),
    (
        "identity: recognized",  # GWE: a visitor who signed out is Recognized, not anonymous
        [start(0), enter("/"), fire("SignIn", 1), fire("SignOut", 2)],
        True,
    ),
    # user: what SignIn/UserInfo said (issue 14: target identity attributes)
    ("user: {tier: gold}", [start(0), enter("/")], False),
    ("user: {tier: gold}", [start(0), enter("/"), fire("SignIn", 1, {"tier": "gold"})], True),
    ("user: {tier: gold}", [start(0), enter("/"), fire("SignIn", 1, {"tier": "silver"})], False),
    ("user: {tier: [gold, platinum]}", [start(0), fire("UserInfo", 1, {"tier": "platinum"})], True),
    ("user: {age: {ge: 18}}", [start(0), fire("UserInfo", 1, {"age": "21"})], True),
    ("user: {age: {ge: 18}}", [start(0), fire("UserInfo", 1, {"age": 17})], False),
    (
        "user: {address.country: FR}",
        [start(0), fire("SignIn", 1, {"address": {"country": "FR"}})],
        True,
    ),
    (
        "user: {tier: gold}",  # still known after signing out, as GWE's Recognized scope
        [start(0), fire("SignIn", 1, {"tier": "gold"}), fire("SignOut", 2)],
        True,
    ),
    (
        "user: {tier: gold, age: {ge: 18}}",
        [start(0), fire("SignIn", 1, {"tier": "gold"}), fire("UserInfo", 2, {"age": 30})],
        True,
    ),
]


@pytest.mark.parametrize(("cond", "steps", "holds"), VISITOR_TABLE)
def test_visitor_facts(cond: str, steps: list[Any], holds: bool) -> None:
    check(cond, steps, 10, holds, None)


# -- time, pages, categories --

TIME_TABLE = [
    # time_on_page_s: due at entered + N while on the page
    ("time_on_page_s: 30", ON_PRICING, 0, False, 30),
    ("time_on_page_s: 30", ON_PRICING, 29.999, False, 30),
    ("time_on_page_s: 30", ON_PRICING, 30, True, None),
    ("time_on_page_s: 30", ON_PRICING, 500, True, None),
    ("time_on_page_s: 2.5", ON_PRICING, 1, False, 2.5),
    ("time_on_page_s: 30", [start(0), enter("/a", 0), enter("/b", 20)], 40, False, 50),
    ("time_on_page_s: 30", [start(0), enter("/a", 0), enter("/b", 20)], 50, True, None),
    ("time_on_page_s: 30", [*ON_PRICING, leave(10)], 20, False, None),
    ("time_on_page_s: 30", [*ON_PRICING, leave(10)], 40, False, None),  # gone: never
    ("time_on_page_s: 0", ON_PRICING, 0, True, None),
    # time_on_site_s: from the visit's first event, whatever the page
    ("time_on_site_s: 60", [start(0), enter("/a", 0), enter("/b", 50)], 59, False, 60),
    ("time_on_site_s: 60", [start(0), enter("/a", 0), enter("/b", 50)], 60, True, None),
    ("time_on_site_s: 60", [start(0), enter("/a", 0), leave(5)], 61, True, None),
    # pages_viewed
    ("pages_viewed: 3", [start(0), enter("/a", 0), enter("/b", 1)], 2, False, None),
    ("pages_viewed: 3", [start(0), enter("/a", 0), enter("/b", 1), enter("/a", 2)], 3, True, None),
    ("pages_viewed: 1", ON_PRICING, 0, True, None),
]


@pytest.mark.parametrize(("cond", "steps", "now", "holds", "due"), TIME_TABLE)
def test_time_and_pages(cond: str, steps: list[Any], now: float, holds: bool, due: float | None):
    check(cond, steps, now, holds, due)


def browse(*cats: str) -> list[Any]:
    """A visit with one page per category string ('a;b' = both)."""
    return [start(0), *(enter(f"/p{i}", i, cats=c) for i, c in enumerate(cats))]


CATEGORY_TABLE = [
    ("category: pricing", browse("pricing"), True),
    ("category: pricing", browse("support"), False),
    ("category: pricing", browse(""), False),
    ("category: {name: pricing, count: 2}", browse("pricing"), False),
    ("category: {name: pricing, count: 2}", browse("pricing", "blog", "pricing"), True),
    ("category: {name: pricing, count: 2}", browse("pricing;offers", "offers"), False),
    ("category: offers", browse("pricing;offers"), True),
    # categories_all: every one, any order
    ("categories_all: [pricing, support]", browse("support", "pricing"), True),
    ("categories_all: [pricing, support]", browse("pricing", "support"), True),
    ("categories_all: [pricing, support]", browse("pricing;support"), True),
    ("categories_all: [pricing, support]", browse("pricing", "pricing"), False),
    ("categories_all: [pricing, support, cart]", browse("pricing", "support"), False),
    # categories_in_sequence: in this order, other pages in between allowed
    ("categories_in_sequence: [product, cart]", browse("product", "cart"), True),
    ("categories_in_sequence: [product, cart]", browse("cart", "product"), False),
    (
        "categories_in_sequence: [product, cart, checkout]",
        browse("product", "blog", "cart", "product", "checkout"),
        True,
    ),
    (
        "categories_in_sequence: [product, cart, checkout]",
        browse("cart", "product", "checkout"),
        False,
    ),
    (
        "categories_in_sequence: [product, cart, checkout]",
        browse("product", "checkout", "cart"),
        False,
    ),
    ("categories_in_sequence: [product, product]", browse("product"), False),
    ("categories_in_sequence: [product, product]", browse("product", "cart", "product"), True),
]


@pytest.mark.parametrize(("cond", "steps", "holds"), CATEGORY_TABLE)
def test_categories(cond: str, steps: list[Any], holds: bool) -> None:
    check(cond, steps, 60, holds, None)


# -- business events and their data --


def bought(*datas: dict[str, Any]) -> list[Any]:
    return [start(0), enter("/checkout"), *(fire("Buy", 1 + i, d) for i, d in enumerate(datas))]


WHERE_TABLE = [
    # (where, event data, holds)
    ({"price": {"gt": 500}}, {"price": 600}, True),
    ({"price": {"gt": 500}}, {"price": 500}, False),
    ({"price": {"ge": 500}}, {"price": 500}, True),
    ({"price": {"lt": 100}}, {"price": 99.5}, True),
    ({"price": {"lt": 100}}, {"price": 100}, False),
    ({"price": {"le": 100}}, {"price": 100}, True),
    ({"price": {"gt": 100, "lt": 1000}}, {"price": 500}, True),
    ({"price": {"gt": 100, "lt": 1000}}, {"price": 1500}, False),
    ({"country": {"eq": "FR"}}, {"country": "FR"}, True),
    ({"country": {"eq": "FR"}}, {"country": "BE"}, False),
    ({"country": {"ne": "FR"}}, {"country": "BE"}, True),
    ({"country": {"ne": "FR"}}, {"country": "FR"}, False),
    ({"country": {"in": ["FR", "BE"]}}, {"country": "BE"}, True),
    ({"country": {"in": ["FR", "BE"]}}, {"country": "DE"}, False),
    ({"product": {"contains": "tv"}}, {"product": "Smart TV 55"}, True),
    ({"product": {"contains": "radio"}}, {"product": "Smart TV 55"}, False),
    ({"coupon": {"exists": True}}, {"coupon": "SPRING"}, True),
    ({"coupon": {"exists": True}}, {"coupon": None}, True),  # present, even if null
    ({"coupon": {"exists": True}}, {}, False),
    ({"coupon": {"exists": False}}, {}, True),
    ({"coupon": {"exists": False}}, {"coupon": "SPRING"}, False),
    # dotted paths
    ({"item.price": {"gt": 500}}, {"item": {"price": 900}}, True),
    ({"item.price": {"gt": 500}}, {"item": {"price": 100}}, False),
    ({"item.price": {"gt": 500}}, {"item": {}}, False),
    ({"item.price": {"gt": 500}}, {"item": "tv"}, False),
    ({"item.price": {"gt": 500}}, {"price": 900}, False),
    ({"a.b.c": {"eq": 1}}, {"a": {"b": {"c": 1}}}, True),
    ({"item.sku": {"exists": True}}, {"item": {"sku": "X1"}}, True),
    # numeric strings compare as numbers
    ({"price": {"gt": 500}}, {"price": "600"}, True),
    ({"price": {"gt": 500}}, {"price": "600.50"}, True),
    ({"price": {"gt": 500}}, {"price": "90"}, False),  # not "90" > "500" as text
    ({"price": {"eq": 600}}, {"price": "600"}, True),
    ({"price": {"le": 600}}, {"price": " 600 "}, True),
    # type mismatch: false, not a crash
    ({"price": {"gt": 500}}, {"price": "abc"}, False),
    ({"price": {"gt": 500}}, {"price": {"amount": 900}}, False),
    ({"price": {"gt": 500}}, {"price": None}, False),
    ({"price": {"lt": 500}}, {"price": [1, 2]}, False),
    ({"price": {"in": ["a", "b"]}}, {"price": {"x": 1}}, False),
    ({"price": {"eq": 500}}, {"price": "abc"}, False),
    # a missing field fails every operator but exists
    ({"price": {"ne": 500}}, {}, False),
    ({"price": {"lt": 500}}, {}, False),
    # several fields: all must hold
    ({"price": {"gt": 500}, "country": {"eq": "FR"}}, {"price": 900, "country": "FR"}, True),
    ({"price": {"gt": 500}, "country": {"eq": "FR"}}, {"price": 900, "country": "BE"}, False),
    # no where: any event of that name
    ({}, {}, True),
]


@pytest.mark.parametrize(("where", "data", "holds"), WHERE_TABLE)
def test_event_where(where: dict[str, Any], data: dict[str, Any], holds: bool) -> None:
    check({"event": {"name": "Buy", "where": where}}, bought(data), 10, holds, None)


def test_event_where_in_numeric_string() -> None:
    # {qty: {in: [1, 2]}} with qty "2": numeric strings compare as numbers, as with gt/eq.
    check(
        {"event": {"name": "Buy", "where": {"qty": {"in": [1, 2]}}}},
        bought({"qty": "2"}),
        10,
        True,
        None,
    )


EVENT_COUNT_TABLE = [
    ("event: Buy", bought({}), True),
    ("event: Buy", [start(0), enter("/checkout"), fire("AddToCart", 1)], False),
    ("event: {name: Buy, count: 2}", bought({}), False),
    ("event: {name: Buy, count: 2}", bought({}, {}), True),
    (
        "event: {name: Buy, count: 2, where: {price: {gt: 5}}}",
        bought({"price": 9}, {"price": 1}),
        False,
    ),
    (
        "event: {name: Buy, count: 2, where: {price: {gt: 5}}}",
        bought({"price": 9}, {"price": 1}, {"price": "7"}),
        True,
    ),
    ("event: PageEntered", ON_PRICING, True),  # system events count too
    ("event: {name: PageEntered, count: 2}", ON_PRICING, False),
]


@pytest.mark.parametrize(("cond", "steps", "holds"), EVENT_COUNT_TABLE)
def test_event_count(cond: str, steps: list[Any], holds: bool) -> None:
    check(cond, steps, 10, holds, None)


@pytest.mark.parametrize(
    ("cond", "message"),
    [
        ("event: {name: Buy, where: {price: {}}}", "needs an operator"),
        ("event: {name: Buy, where: {country: {in: FR}}}", "needs a list"),
        ("event: {name: Buy, where: {price: {greater: 5}}}", "greater"),
        ("event: {name: Buy, count: 0}", "greater than or equal to 1"),
        ("url: {equals: a, contains: b}", "exactly one"),
        ("url: {regex: '('}", "not valid"),
        ("referrer: {equals: ''}", "exactly one"),
        ("device: phone", "device"),
        ("identity: known", "identity"),
        ("categories_in_sequence: [product]", "at least 2"),
        ("{}", "empty condition"),
        ("pages_viewed: 0", "greater than or equal to 1"),
        ("time_on_page_s: -1", "greater than or equal to 0"),
    ],
)
def test_invalid_conditions(cond: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        condition(cond)


@pytest.mark.parametrize("cond", ["url:", "time_on_page_s:", "{event: null}"])
def test_null_condition_is_rejected(cond: str) -> None:
    # `when: {url: }` passes Condition._not_empty (model_fields_set counts explicit None) and
    # compile_condition then has no predicate: the strategy fires on every page.
    with pytest.raises(ValidationError):
        condition(cond)


# -- combinators --

COMBINATOR_TABLE = [
    # several keys in one item: all must hold
    ("{url: /pricing, time_on_page_s: 30}", ON_PRICING, 10, False, 30),
    ("{url: /pricing, time_on_page_s: 30}", ON_PRICING, 30, True, None),
    ("{url: /pricing, time_on_page_s: 30}", ON_ABOUT, 10, False, None),
    # all: the latest due when every failing part has one
    (
        "all: [{time_on_page_s: 30}, {time_on_site_s: 60}]",
        [start(0), enter("/a", 0), enter("/b", 20)],
        25,
        False,
        60,
    ),
    (
        "all: [{time_on_site_s: 60}, {time_on_page_s: 30}]",
        [start(0), enter("/a", 0), enter("/b", 40)],
        45,
        False,
        70,
    ),
    (
        "all: [{time_on_page_s: 30}, {time_on_site_s: 60}]",
        [start(0), enter("/a", 0), enter("/b", 20)],
        55,
        False,
        60,
    ),
    (
        "all: [{time_on_page_s: 30}, {time_on_site_s: 60}]",
        [start(0), enter("/a", 0), enter("/b", 20)],
        60,
        True,
        None,
    ),
    ("all: [{time_on_page_s: 30}, {url: /pricing}]", ON_PRICING, 5, False, 30),
    # all: no due when one failing part cannot ripen with time, whatever the order
    ("all: [{time_on_page_s: 30}, {event: Buy}]", ON_PRICING, 5, False, None),
    ("all: [{event: Buy}, {time_on_page_s: 30}]", ON_PRICING, 5, False, None),
    ("all: [{time_on_page_s: 30}, {url: /cart}]", ON_PRICING, 5, False, None),
    # any: true if one holds; else the earliest due
    ("any: [{url: /cart}, {url: /pricing}]", ON_PRICING, 5, True, None),
    (
        "any: [{time_on_page_s: 30}, {time_on_site_s: 60}]",
        [start(0), enter("/a", 0), enter("/b", 20)],
        25,
        False,
        50,
    ),
    (
        "any: [{time_on_site_s: 60}, {time_on_page_s: 30}]",
        [start(0), enter("/a", 0), enter("/b", 40)],
        45,
        False,
        60,
    ),
    ("any: [{url: /cart}, {time_on_page_s: 30}]", ON_PRICING, 5, False, 30),
    ("any: [{url: /cart}, {event: Buy}]", ON_PRICING, 5, False, None),
    ("any: [{url: /cart}, {time_on_page_s: 30}]", ON_PRICING, 31, True, None),
    # not: no due, ever
    ("not: {url: /checkout}", ON_PRICING, 5, True, None),
    ("not: {url: /checkout}", on("/checkout"), 5, False, None),
    ("not: {time_on_page_s: 30}", ON_PRICING, 5, True, None),
    ("not: {time_on_page_s: 30}", ON_PRICING, 40, False, None),
    ("not: {any: [{url: /cart}, {url: /checkout}]}", ON_PRICING, 5, True, None),
    # nesting
    (
        "all: [{any: [{url: /pricing}, {url: /plans}]}, {not: {identity: authenticated}},"
        " {time_on_page_s: 20}]",
        ON_PRICING,
        5,
        False,
        20,
    ),
    (
        "all: [{any: [{url: /pricing}, {url: /plans}]}, {not: {identity: authenticated}},"
        " {time_on_page_s: 20}]",
        [*ON_PRICING, fire("SignIn", 1)],
        5,
        False,
        None,
    ),
    (
        "any: [{all: [{url: /cart}, {time_on_page_s: 10}]}, {all: [{url: /pricing},"
        " {time_on_page_s: 40}]}]",
        ON_PRICING,
        5,
        False,
        40,
    ),
]


@pytest.mark.parametrize(("cond", "steps", "now", "holds", "due"), COMBINATOR_TABLE)
def test_combinators(cond: str, steps: list[Any], now: float, holds: bool, due: float | None):
    check(cond, steps, now, holds, due)


# -- what can change a condition: the engine's index --


@pytest.mark.parametrize(
    ("cond", "keys"),
    [
        ("url: /pricing", {"page"}),
        ("time_on_page_s: 30", {"page"}),
        ("visitor: returning", {"page"}),
        ("identity: authenticated", {"identity"}),
        ("event: Buy", {"event:Buy"}),
        ("category: pricing", {"category:pricing"}),
        ("categories_all: [a, b]", {"category:a", "category:b"}),
        ("categories_in_sequence: [a, b]", {"category:a", "category:b"}),
        ("{event: Buy, url: /checkout}", {"event:Buy", "page"}),
        ("any: [{event: Buy}, {category: cart}]", {"event:Buy", "category:cart"}),
        ("not: {event: Buy}", {"event:Buy", "page"}),
    ],
)
def test_trigger_keys(cond: str, keys: set[str]) -> None:
    assert trigger_keys(condition(cond)) == keys


# -- schedule --

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)  # type: ignore[misc]


OFFICE = {"timezone": "Europe/Paris", "hours": {"mon-fri": "09:00-18:00"}}
SPLIT = {
    "timezone": "Europe/Paris",
    "hours": {"mon-fri": "09:00-18:00", "sat": ["10:00-12:00", "14:00-16:00"]},
}
JANUARY = {"timezone": "Europe/Paris", "from": "2025-01-01", "until": "2025-01-31"}

# 2025-01-10 is a Friday; 2025-03-30 is the night Paris moves to summer time.
SCHEDULE_TABLE = [
    (OFFICE, paris(2025, 1, 10, 10, 0), True, None),
    (OFFICE, paris(2025, 1, 10, 9, 0), True, None),
    (OFFICE, paris(2025, 1, 10, 17, 59), True, None),
    (OFFICE, paris(2025, 1, 10, 18, 0), False, paris(2025, 1, 13, 9, 0)),
    (OFFICE, paris(2025, 1, 10, 19, 0), False, paris(2025, 1, 13, 9, 0)),
    (OFFICE, paris(2025, 1, 11, 12, 0), False, paris(2025, 1, 13, 9, 0)),
    (OFFICE, paris(2025, 1, 12, 23, 59), False, paris(2025, 1, 13, 9, 0)),
    (OFFICE, paris(2025, 1, 8, 8, 0), False, paris(2025, 1, 8, 9, 0)),
    (OFFICE, paris(2025, 1, 8, 20, 0), False, paris(2025, 1, 9, 9, 0)),
    # the zone is the schedule's, not UTC: 08:30 UTC is 09:30 in Paris in winter
    (OFFICE, datetime(2025, 1, 10, 8, 30, tzinfo=UTC), True, None),
    (OFFICE, datetime(2025, 1, 10, 7, 30, tzinfo=UTC), False, paris(2025, 1, 10, 9, 0)),
    (OFFICE, datetime(2025, 1, 10, 17, 30, tzinfo=UTC), False, paris(2025, 1, 13, 9, 0)),
    # across the change to summer time: Monday 09:00 CEST
    (OFFICE, paris(2025, 3, 28, 19, 0), False, paris(2025, 3, 31, 9, 0)),
    # several spans in a day
    (SPLIT, paris(2025, 1, 11, 11, 0), True, None),
    (SPLIT, paris(2025, 1, 11, 13, 0), False, paris(2025, 1, 11, 14, 0)),
    (SPLIT, paris(2025, 1, 11, 15, 0), True, None),
    (SPLIT, paris(2025, 1, 11, 16, 30), False, paris(2025, 1, 13, 9, 0)),
    (SPLIT, paris(2025, 1, 12, 10, 0), False, paris(2025, 1, 13, 9, 0)),
    # day ranges that wrap over the week-end, and an end at 24:00
    ({"hours": {"fri-mon": "10:00-11:00"}}, datetime(2025, 1, 12, 10, 30, tzinfo=UTC), True, None),
    (
        {"hours": {"fri-mon": "10:00-11:00"}},
        datetime(2025, 1, 14, 10, 30, tzinfo=UTC),
        False,
        datetime(2025, 1, 17, 10, 0, tzinfo=UTC),
    ),
    ({"hours": {"sun": "20:00-24:00"}}, datetime(2025, 1, 12, 23, 59, tzinfo=UTC), True, None),
    (
        {"hours": {"mon, wed": "10:00-11:00"}},
        datetime(2025, 1, 14, 10, 30, tzinfo=UTC),
        False,
        datetime(2025, 1, 15, 10, 0, tzinfo=UTC),
    ),
    # dates: from (at midnight in the zone) until (the whole day)
    (JANUARY, paris(2024, 12, 31, 12, 0), False, paris(2025, 1, 1, 0, 0)),
    (JANUARY, paris(2025, 1, 1, 0, 0), True, None),
    (JANUARY, paris(2025, 1, 31, 23, 59), True, None),
    (JANUARY, paris(2025, 2, 1, 0, 0), False, None),
    (JANUARY, datetime(2024, 12, 31, 23, 30, tzinfo=UTC), True, None),  # 00:30 in Paris
    ({"from": "2025-01-01"}, datetime(2030, 1, 1, tzinfo=UTC), True, None),
    ({"until": "2025-01-31"}, datetime(2020, 1, 1, tzinfo=UTC), True, None),
    ({**OFFICE, "until": "2025-01-31"}, paris(2025, 2, 3, 10, 0), False, None),
]


@pytest.mark.parametrize(("spec", "now", "holds", "due"), SCHEDULE_TABLE)
def test_schedule(spec: dict[str, Any], now: datetime, holds: bool, due: datetime | None):
    pred = schedule_pred(Schedule.model_validate(spec))
    visit = visit_with(*ON_PRICING)
    assert pred(Ctx(visit, epoch_ms(now), AvailabilityBoard())) == (
        holds,
        None if due is None else epoch_ms(due),
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"timezone": "Europe/Pariss"}, "unknown time zone"),
        ({"hours": {"mon-fri": "9h-18h"}}, "HH:MM-HH:MM"),
        ({"hours": {"mon-fri": "09:00-25:00"}}, "not a time of day"),
        ({"hours": {"mon-fri": "09:60-18:00"}}, "not a time of day"),
        ({"hours": {"monday": "09:00-18:00"}}, "days are mon"),
        ({"hours": {"mon-fri": "09:00-18:00"}, "timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_invalid_schedules(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate(spec)


def test_overnight_hours_open_or_are_rejected() -> None:
    # 22:00-02:00 runs past midnight: open at 23:00.
    try:
        schedule = Schedule.model_validate({"hours": {"mon-sun": "22:00-02:00"}})
    except ValidationError:
        return
    visit = visit_with(*ON_PRICING)
    late = epoch_ms(datetime(2025, 1, 11, 23, 0, tzinfo=UTC))
    assert schedule_pred(schedule)(Ctx(visit, late, AvailabilityBoard()))[0] is True


# -- availability --

AVAILABILITY_TABLE = [
    # (availability, report for its group as (ready, wait) or None, holds, recheck?)
    ({"group": "sales"}, None, False, True),  # never reported: closed (availability_when_stale)
    ({"group": "sales"}, (1, 0), True, False),
    ({"group": "sales"}, (0, 0), False, True),
    ({"group": "sales", "min_ready": 2}, (1, 0), False, True),
    ({"group": "sales", "min_ready": 2}, (2, 0), True, False),
    ({"group": "sales", "min_ready": 0}, (0, 999), True, False),
    ({"group": "sales", "max_wait_s": 60}, (3, 60), True, False),
    ({"group": "sales", "max_wait_s": 60}, (3, 90), False, True),
    ({"group": "sales", "min_ready": 2, "max_wait_s": 60}, (1, 10), False, True),
]


@pytest.mark.parametrize(("spec", "report", "holds", "recheck"), AVAILABILITY_TABLE)
def test_availability(
    spec: dict[str, Any], report: tuple[int, float] | None, holds: bool, recheck: bool
) -> None:
    board = AvailabilityBoard()
    board.report("support", GroupState(0, 999, ms(90)))  # another group's state does not matter
    if report is not None:
        board.report("sales", GroupState(*report, ms(90)))
    now = ms(100)
    pred = availability_pred(Availability.model_validate(spec))
    due = now + AVAILABILITY_RECHECK_MS if recheck else None
    assert AVAILABILITY_RECHECK_MS == 5000
    assert pred(Ctx(visit_with(*ON_PRICING), now, board)) == (holds, due)


def test_availability_follows_the_latest_report() -> None:
    board = AvailabilityBoard()
    pred = availability_pred(Availability(group="sales"))
    ctx = Ctx(visit_with(*ON_PRICING), ms(10), board)
    board.report("sales", GroupState(0, 0, ms(1)))
    assert pred(ctx) == (False, ms(15))
    board.report("sales", GroupState(2, 0, ms(2)))
    assert pred(ctx) == (True, None)


@pytest.mark.parametrize(
    ("when_stale", "age_s", "holds"),
    [
        (WhenStale.CLOSED, 60, True),  # 60 s old: still believed
        (WhenStale.CLOSED, 60.001, False),  # older: stale, closed
        (WhenStale.OPEN, 60.001, True),  # older: stale, open (no limit)
        (WhenStale.OPEN, None, True),  # never reported, open
        (WhenStale.CLOSED, None, False),  # never reported, closed
    ],
)
def test_availability_report_goes_stale(
    when_stale: WhenStale, age_s: float | None, holds: bool
) -> None:
    board = AvailabilityBoard(stale_after_s=60, when_stale=when_stale)
    pred = availability_pred(Availability(group="sales"))
    if age_s is not None:
        board.report("sales", GroupState(3, 0, ms(0)))
    now = ms(0) + round((age_s or 0) * 1000)
    due = None if holds else now + AVAILABILITY_RECHECK_MS
    assert pred(Ctx(visit_with(*ON_PRICING), now, board)) == (holds, due)


def test_compiled_condition_is_pure() -> None:
    """The same predicate answers for many visits and times without keeping state."""
    pred = compile_condition(condition("{url: /pricing, time_on_page_s: 30}"))
    a, b = visit_with(*ON_PRICING, visit_id="VA"), visit_with(*ON_ABOUT, visit_id="VB")
    board = AvailabilityBoard()
    assert pred(Ctx(a, ms(40), board)) == (True, None)
    assert pred(Ctx(b, ms(40), board)) == (False, None)
    assert pred(Ctx(a, ms(10), board)) == (False, ms(30))
