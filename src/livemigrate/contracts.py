"""What crosses a process boundary on a migration's path, as models both ends share.

A migration host's progress report travels agent → source API → target API (over the link). Each
hop validates it against the same model, so a malformed report is refused with a 400 at the first
hop that sees it, and nothing of it is stored anywhere.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

from livemigrate.engine.events import Phase

ReportedStatus = Literal["WORKING", "COMPLETE", "FAILED"]


class Contract(BaseModel):
    """Unknown fields are refused: a sender and a receiver that disagree on a contract should say so."""

    model_config = ConfigDict(extra="forbid")


class NamespaceReport(Contract):
    namespace: StrictStr = Field(min_length=1)
    copied: StrictInt = Field(ge=0)
    total: StrictInt = Field(ge=0)
    done: StrictBool


class ProgressReport(Contract):
    """A migration's state as its migration host sees it; the target decides what it means for the
    migration (only a requested cutover completes one)."""

    status: ReportedStatus = "WORKING"
    phase: Phase | None = None
    lagTimeSeconds: StrictFloat | StrictInt | None = Field(default=None, ge=0)
    readyForCutover: StrictBool = False
    # Absent (a final report) leaves the figures the target holds as they are.
    copiedDocuments: StrictInt | None = Field(default=None, ge=0)
    totalDocuments: StrictInt | None = Field(default=None, ge=0)
    namespaces: list[NamespaceReport] | None = None
    # What a person should act on while the migration runs, e.g. a change stream that delivers nothing.
    warnings: list[StrictStr] | None = None
    errorMessage: StrictStr | None = None

    def to_json(self) -> dict[str, object]:
        """As sent and as stored: plain JSON values, absent fields left out."""
        return self.model_dump(mode="json", exclude_none=True)
