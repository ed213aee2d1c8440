"""The data every hand-off carries, so that agents see where the visitor came from and reports
tell proactive engagements from reactive ones."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from ..attempts import Attempt

# GWE's marker of a proactive engagement: the key is present, with an empty value.
WEBENGAGEMENT_KEY = "webengagement"
PHONE = re.compile(r"^\+?[0-9]{6,15}$")
PHONE_SEPARATORS = re.compile(r"[\s().\-/]")
MAX_CALLBACK_AHEAD = timedelta(days=30)  # further than this is almost surely a typo
TOMORROW_MORNING_HOUR = 9  # "tomorrow morning", in the visitor's own time zone


def attached_data(attempt: Attempt, page_id: str | None = None) -> dict[str, str]:
    return {
        "visitID": attempt.visit_id,
        "pageID": page_id or attempt.page_id,
        WEBENGAGEMENT_KEY: "",
    }


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
