"""What the tracker sends, validated once at the edge."""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    with_config,
)
from typing_extensions import TypedDict

from .. import constants as C
from .bounds import SYSTEM_DATA, WHOLE, UncheckedJSONData, UrlText, check_data, within

ID = Annotated[str, StringConstraints(pattern=C.ID_PATTERN)]
EMPTY = Field(json_schema_extra={"default": ""})  # documented: "" when the key is left out


def _check_event(event: EventIn) -> EventIn:
    """``data`` within the bounds of any event's (``check_data``, as ``JSONData`` checks it:
    here in the same call), and the keys the engine reads from system events with their types
    and bounds. One call per event, after its fields are valid: a refusal names
    ``events.N.data.<key>``."""
    data = event.get("data")
    if data is None:
        return event
    try:
        check_data(data)
        if event["eventType"] == "SYSTEM":
            model = SYSTEM_DATA.get(event["eventName"])
            if model is not None:
                model.model_validate(data)
    except ValidationError as exc:
        raise within("data", exc) from None
    return event


# A TypedDict, not a model: pydantic-core validates straight into the dict. A model instance
# per event took ~10 % more instructions and ~25 % more time to validate a batch (callgrind and
# timeit, 2026-12-02); bench/ingest.py's validation ceiling at 20 events per request went from
# 0.39-0.42 to 0.48-0.53. A key the tracker may leave out is then absent: read it with ``.get``.
@with_config(ConfigDict(extra="ignore"))
class EventIn(TypedDict):
    """One event in the GWE envelope.

    A SYSTEM event whose name the engine does not know (older GWE sites send some) is kept as
    it came, bounded like any other event, and changes no visit state."""

    eventType: Literal["SYSTEM", "BUSINESS"]
    eventName: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    eventID: ID
    pageID: ID
    visitID: ID
    globalVisitID: ID
    timestamp: Annotated[
        int, Field(ge=0, le=C.MAX_TIMESTAMP_MS, description="browser clock, epoch ms"), WHOLE
    ]
    url: UrlText
    category: NotRequired[Annotated[str, StringConstraints(max_length=1000), EMPTY]]
    languageCode: NotRequired[
        Annotated[str, StringConstraints(max_length=C.MAX_LANGUAGE_CODE_CHARS), EMPTY]
    ]
    data: NotRequired[UncheckedJSONData]  # checked by _check_event


CheckedEvent = Annotated[EventIn, AfterValidator(_check_event)]
EVENT_IN: TypeAdapter[EventIn] = TypeAdapter(CheckedEvent)  # one event, as a batch checks it


class EventBatch(BaseModel):
    """``POST /monitoring/events``: events in the order they happened."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[CheckedEvent], Field(min_length=1, max_length=C.MAX_EVENTS_PER_BATCH)]


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
