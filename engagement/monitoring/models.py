"""What the tracker sends, validated once at the edge."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from .. import constants as C
from .bounds import SYSTEM_DATA, WHOLE, UncheckedJSONData, UrlText, check_data

ID = Annotated[str, StringConstraints(pattern=C.ID_PATTERN)]


class EventIn(BaseModel):
    """One event in the GWE envelope.

    A SYSTEM event whose name the engine does not know (older GWE sites send some) is kept as
    it came, bounded like any other event, and changes no visit state."""

    model_config = ConfigDict(extra="ignore", frozen=True)

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
    category: Annotated[str, StringConstraints(max_length=1000)] = ""
    languageCode: Annotated[str, StringConstraints(max_length=C.MAX_LANGUAGE_CODE_CHARS)] = ""
    data: UncheckedJSONData = Field(default_factory=dict)  # checked by _data

    @field_validator("data")
    @classmethod
    def _data(cls, data: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """``data`` within the bounds of any event's (``check_data``, as ``JSONData`` checks
        it: here in the same call), and the keys the engine reads from system events with
        their types and bounds."""
        check_data(data)
        if info.data.get("eventType") == "SYSTEM":
            model = SYSTEM_DATA.get(info.data.get("eventName", ""))
            if model is not None:
                model.model_validate(data)  # a refusal names events.N.data.<key>
        return data


class EventBatch(BaseModel):
    """``POST /monitoring/events``: events in the order they happened."""

    model_config = ConfigDict(extra="forbid")

    events: Annotated[list[EventIn], Field(min_length=1, max_length=C.MAX_EVENTS_PER_BATCH)]


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
