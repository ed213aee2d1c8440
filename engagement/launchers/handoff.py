"""The data every hand-off carries, so that agents see where the visitor came from and reports
tell proactive engagements from reactive ones."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from ..attempts import Attempt
from ..settings import UserData
from ..visits.model import Visit

# GWE's marker of a proactive engagement: the key is present, with an empty value.
WEBENGAGEMENT_KEY = "webengagement"
PHONE = re.compile(r"^\+?[0-9]{6,15}$")
PHONE_SEPARATORS = re.compile(r"[\s().\-/]")
MAX_CALLBACK_AHEAD = timedelta(days=30)  # further than this is almost surely a typo
TOMORROW_MORNING_HOUR = 9  # "tomorrow morning", in the visitor's own time zone


def attached_data(
    attempt: Attempt,
    page_id: str | None = None,
    visit: Visit | None = None,
    fields: Iterable[str] = (),
) -> dict[str, str]:
    """GWE's attached data: the visit's ``fields`` (settings ``user_data.attach``, each under
    its own name) that the visit has, then visitID, pageID and the proactive marker."""
    data = visit_fields(visit, {f.partition(".")[2]: f for f in fields}) if visit else {}
    data.update({"visitID": attempt.visit_id, "pageID": page_id or attempt.page_id})
    data[WEBENGAGEMENT_KEY] = ""
    return data


def page_handoff(visit: Visit, user_data: UserData) -> dict[str, dict[str, str]]:
    """What the page adds to a Widgets chat it opens: ``userData`` (the attached fields; the
    page adds its own IDs) and ``form`` (the registration form, prefilled); empty ones left out."""
    found = {
        "userData": visit_fields(visit, {f.partition(".")[2]: f for f in user_data.attach}),
        "form": visit_fields(visit, {str(k): v for k, v in user_data.form.items()}),
    }
    return {k: v for k, v in found.items() if v}


def visit_fields(visit: Visit, sources: Mapping[str, str]) -> dict[str, str]:
    """{key: value of the field named by its source ("UserInfo.email")} for the fields the
    visit has, as strings (attached data is strings)."""
    out: dict[str, str] = {}
    for key, source in sources.items():
        value = visit_value(visit, source)
        if value is not None:
            out[key] = value
    return out


def visit_value(visit: Visit, source: str) -> str | None:
    """A field of the visit's latest UserInfo / SignIn event that has it (or, once such events
    left memory, of the identity they built), or of its VisitStarted."""
    event, _, name = source.partition(".")
    value: Any
    if event == "VisitStarted":
        started = {
            "timezoneOffset": visit.timezone_offset,
            "returning": visit.returning,
            "userAgent": visit.user_agent or None,
        }
        value = started.get(name)
    else:
        kept = (e.data.get(name) for e in reversed(visit.events) if e.event_name == event)
        value = next((v for v in kept if v is not None), visit.user_info.get(name))
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))  # numbers, lists, objects


class CallbackInputError(ValueError):
    """A value the visitor typed is wrong; ``field`` names it, the message says how."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def normalize_phone(raw: str) -> str:
    number = PHONE_SEPARATORS.sub("", raw.strip())
    if number.startswith("00"):
        number = "+" + number[2:]
    if not PHONE.match(number):
        raise CallbackInputError(
            "_customer_number",
            "Please enter a phone number of 6 to 15 digits, e.g. +33 1 23 45 67 89.",
        )
    return number


def desired_time(raw: str, now: datetime, timezone_offset_min: int | None) -> str:
    """'now', '+1h', 'tomorrow' or an ISO 8601 time, as GMS wants it: 'now' or ISO UTC."""
    value = raw.strip().lower()
    if value in ("", "now", "asap"):
        return "now"
    if value == "+1h":
        when = now + timedelta(hours=1)
    elif value == "tomorrow":
        # getTimezoneOffset(): minutes to add to local time to get UTC.
        offset = timedelta(minutes=timezone_offset_min or 0)
        local = now - offset
        morning = (local + timedelta(days=1)).replace(
            hour=TOMORROW_MORNING_HOUR, minute=0, second=0, microsecond=0
        )
        when = morning + offset
    else:
        try:
            when = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise CallbackInputError(
                "_desired_time", "Please choose a time, or 'as soon as possible'."
            ) from exc
        if when.tzinfo is None:
            raise CallbackInputError("_desired_time", "The time needs a time zone (e.g. Z).")
    when = when.astimezone(UTC)
    if when < now - timedelta(minutes=1):
        raise CallbackInputError("_desired_time", "That time is in the past.")
    if when > now + MAX_CALLBACK_AHEAD:
        raise CallbackInputError("_desired_time", "Please choose a time within 30 days.")
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
