"""A way back: the parts of a run that differ for a reversible migration and for its reverse.

A reversible forward migration keeps, when its cutover completes, where the destination's change
streams stand (`ReversePoint`): the forward run watches the destination all along (for the ledger), and
at cutover it drains that watch after the migration's own last write, so the point it keeps is after
every write of the migration and before any write of the application. Whenever the reverse is asked
for, its run reads the destination's changes from there — the writes made before the request too.

A reverse run is a migration from the destination back into the source with no copy: it starts at
replication, from that point, with a fresh ledger (its verification pass reads both sides while it
replicates), and its cutover is a forward cutover's: the drain blocks the destination's user writes,
the verdict compares both sides with the same evidence. When it completes, the source's write block
(set by the forward cutover, kept since so that no application wrote there meanwhile) is lifted: the
source is current and takes writes again, the destination stays blocked.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.capture.streams import Capture
from livemigrate.engine.checkpoints import CheckpointStore, Document
from livemigrate.engine.coordinator.replay import DESTINATION_TOKENS, SOURCE_TOKENS, saved_tokens, token_documents
from livemigrate.engine.coordinator.run_state import Step, open_capture
from livemigrate.engine.mongo.collections import Discovery
from livemigrate.engine.mongo.connect import wire_version
from livemigrate.engine.mongo.faults import retry
from livemigrate.engine.options import MigrationOptions, ReversePoint
from livemigrate.engine.versions import WIRE_WRITE_BLOCKING

log = logging.getLogger("livemigrate.engine.reverse")

REVERSE_POINT = "reverse-point"  # the checkpoint a reversible migration keeps once complete


def kept_point(checkpoints: CheckpointStore, namespaces: list[str], include: tuple[str, ...] = (),
               exclude: tuple[str, ...] = ()) -> ReversePoint | None:
    """Where a reverse would start, as the forward run's checkpoints have it now (its cutover drained);
    None when the destination was not watched (a standalone, or no `changeStream` privilege)."""
    meta = checkpoints.load("meta")["meta"]
    tokens = saved_tokens(checkpoints, DESTINATION_TOKENS)
    if not tokens:
        log.warning("this migration cannot be reversed: the destination's changes were not followed (it offers no "
                    "change stream to this user)")
        return None
    point = ReversePoint(str(meta["capture"]), tokens, tuple(namespaces), include, exclude)
    checkpoints.save({REVERSE_POINT: {"point": point.to_json()}})  # what `livemigrate reverse` starts from
    return point


def saved_point(checkpoints: CheckpointStore) -> ReversePoint | None:
    """The point a completed reversible migration kept in its checkpoints, if any."""
    kept = checkpoints.load(REVERSE_POINT).get(REVERSE_POINT)
    return ReversePoint.from_json(str(kept["point"])) if kept else None


def start_reverse(source: MongoClient[Any], options: MigrationOptions, checkpoints: CheckpointStore,
                  migration_id: str, discovery: Discovery, meta: Document) -> tuple[Document, Capture]:
    """A reverse run's start: its checkpoints say replication, from the forward cutover's point, over the
    collections the forward run migrated (and those created on the destination since, which a
    per-collection capture looks for as it replicates)."""
    point = options.reverse_from
    assert point is not None
    meta = {**meta, "id": migration_id, "capture": point.capture, "phase": Step.REPLAY.value, "reverse": True}
    # The forward run's collections; one created on the destination since is a late one, copied and
    # followed as the capture finds it (a deployment-wide capture sees it in its stream).
    copied = [spec for spec in discovery.copied if spec.namespace in set(point.namespaces)]
    checkpoints.clear()
    capture = open_capture(source, options, point.capture, dict(point.tokens), [spec.namespace for spec in copied])
    checkpoints.save({"meta": meta} | token_documents(SOURCE_TOKENS, dict(point.tokens))
                     | {f"ns:{spec.namespace}": spec.to_document() for spec in copied}
                     | {f"total:{spec.namespace}": {"total": 0} for spec in copied})
    log.info("starting the reverse of a migration: the destination's changes since its cutover, back into the "
             "source, from %d resume point(s); change capture: %s", len(point.tokens), point.capture)
    return meta, capture


def hand_writes_back(source: MongoClient[Any]) -> None:
    """The end of a reverse: the source (this run's target) takes the application's writes again."""
    try:
        retry(source, "allowing the source's writes again",
              lambda: source.admin.command({"setUserWriteBlockMode": 1, "global": False}))
        log.info("the reverse is complete: the source takes writes again; the destination's stay blocked")
    except PyMongoError as error:
        reason = str(error).split(", full error:")[0][:200]
        if wire_version(source) < WIRE_WRITE_BLOCKING:  # older than 6.0: it was never blocked
            log.info("the reverse is complete; the source has no write block to lift (%s)", reason)
        else:
            log.error("the reverse is complete but the source's write block could not be lifted (%s): lift it "
                      "with db.adminCommand({setUserWriteBlockMode: 1, global: false})", reason)

