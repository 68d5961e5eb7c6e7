"""Verification: per namespace, document counts and an order-independent hash of every document's BSON.

Each document is hashed as the exact BSON the server returns (field order included: MongoDB
compares documents that way too); a namespace's hash is the sum of its documents' hashes modulo
2**256, so it does not depend on the order documents are read in. Mismatches are listed by `_id`.

Two ways to get there: `verify` reads every document of both sides; `verify_changed` reads again
only the documents the ledger marks dirty and takes the rest from it (`ledger.py` says why that is
sound), which keeps a cutover short however large the data; `read_again` reads any other keys the
same way (those the ledger disagrees on, at cutover: `verify/verdict.py`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from livemigrate.engine.digests import digest_of, identifier_of, namespace_hash
from livemigrate.engine.events import VerificationState
from livemigrate.engine.ledger import Side, VerificationLedger
from livemigrate.engine.mongo.faults import Faults, retry
from livemigrate.engine.mongo.reader import in_batches, prefetch, raw_collection

log = logging.getLogger("livemigrate.engine.verify")

T = TypeVar("T")

_BATCH = 1000
# A whole-namespace read asks for this many documents a round trip (a server caps a reply at 16 MiB
# whatever is asked): fewer getMores cost the server less per document, while the ledger still takes
# them `_BATCH` at a time.
_READ_BATCH = 5000


@dataclass(frozen=True)
class NamespaceComparison:
    namespace: str
    source_count: int
    target_count: int
    source_hash: str
    target_hash: str
    mismatched_ids: tuple[Any, ...] = ()
    mismatch_count: int = 0

    @property
    def equal(self) -> bool:
        return self.source_count == self.target_count and self.source_hash == self.target_hash


@dataclass(frozen=True)
class VerifyReport:
    namespaces: tuple[NamespaceComparison, ...] = field(default_factory=tuple)

    @property
    def equal(self) -> bool:
        return all(comparison.equal for comparison in self.namespaces)

    def describe_differences(self, ids: int = 5) -> str:
        """The namespaces that differ, their counts and first `_id`s: what a person needs to look."""
        parts = []
        for c in self.namespaces:
            if c.equal:
                continue
            shown = ", ".join(map(str, c.mismatched_ids[:ids]))
            parts.append(f"{c.namespace} ({c.source_count} document(s) on the source, {c.target_count} on the "
                         f"destination; {c.mismatch_count} differ" + (f", first _id: {shown}" if shown else "") + ")")
        return "; ".join(parts)

    def to_document(self) -> dict[str, Any]:
        return {"equal": self.equal, "namespaces": [
            {"namespace": c.namespace, "equal": c.equal, "sourceCount": c.source_count, "targetCount": c.target_count,
             "sourceHash": c.source_hash, "targetHash": c.target_hash, "mismatchCount": c.mismatch_count,
             "mismatchedIds": [str(value) for value in c.mismatched_ids]} for c in self.namespaces]}


Digests = dict[bytes, bytes]  # the BSON of `{_id}` -> the digest of the document (`ledger.digest_of`)


def _batches(client: MongoClient[Any], namespace: str) -> Iterator[list[RawBSONDocument]]:
    """The whole namespace, read ahead on a thread of its own: the server sends the next batch while
    this one is hashed, so reading goes at the server's pace rather than the server's plus ours."""
    return prefetch(in_batches(raw_collection(client, namespace).find({}).batch_size(_READ_BATCH), _BATCH))


def _digests(client: MongoClient[Any], namespace: str) -> Digests:
    """The namespace's digests; after a fault (`mongo/faults.py`), read again from the start."""
    faults = Faults(client, f"reading {namespace} to verify it")
    while True:
        digests: Digests = {}
        try:
            for batch in _batches(client, namespace):
                digests.update(digest_of(document) for document in batch)
                faults.succeeded()
            return digests
        except PyMongoError as error:
            faults.passed_or_raise(error)


def on_both_sides(read: Callable[[MongoClient[Any], Side], T], source: MongoClient[Any],
                   target: MongoClient[Any]) -> tuple[T, T]:
    # Each side is read by a thread of its own, start to end: both servers stay busy at once, and
    # reading takes about as long as reading the larger side.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
        source_side, target_side = pool.submit(read, source, Side.SOURCE), pool.submit(read, target, Side.TARGET)
        return source_side.result(), target_side.result()


def compare_namespace(namespace: str, on_source: Digests, on_target: Digests, sample: int) -> NamespaceComparison:
    mismatched = [key for key, digest in on_source.items() if on_target.get(key) != digest]
    mismatched += [key for key in on_target if key not in on_source]
    return NamespaceComparison(
        namespace=namespace,
        source_count=len(on_source),
        target_count=len(on_target),
        source_hash=namespace_hash(on_source.values()),
        target_hash=namespace_hash(on_target.values()),
        mismatched_ids=tuple(identifier_of(key) for key in mismatched[:sample]),
        mismatch_count=len(mismatched),
    )


def verify(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
           sample: int = 20) -> VerifyReport:
    """Read every document of both sides."""
    on_source, on_target = on_both_sides(
        lambda client, _: {namespace: _digests(client, namespace) for namespace in namespaces}, source, target)
    return VerifyReport(tuple(compare_namespace(namespace, on_source[namespace], on_target[namespace], sample)
                              for namespace in namespaces))


# --- with the ledger ---------------------------------------------------------------------------


class VerificationPass:
    """Both sides read whole into the ledger once the copy is done, each by a thread of its own, while
    changes replicate — so that cutover reads again only what changes from then on.

    The source's side is usually in the ledger already: the copy recorded it from the bytes it copied
    (`VerificationLedger.expect_copy`), and a side the ledger holds (from the copy, or an earlier run
    of the same migration) is not read again. Not during the copy: the target is the copy's
    bottleneck, and reading it meanwhile costs the copy as much time as it saves later."""

    def __init__(self, source: MongoClient[Any], target: MongoClient[Any], ledger: VerificationLedger,
                 namespaces: Sequence[str], stopping: threading.Event, on_end: Callable[[], None],
                 sample: int = 0) -> None:
        self._sample = sample  # keys drawn at random for the cutover to read again
        self._clients = (source, target)
        self._ledger = ledger
        self._namespaces = namespaces
        self._stopping = stopping
        self._on_end = on_end
        self._complete = False
        self._sides_read: dict[str, int] = {}  # namespace -> how many of its sides are in the ledger
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="verify-pass", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def states(self) -> dict[str, VerificationState]:
        """Each namespace's state for the progress document: READ once both of its sides are in the ledger."""
        running = self.running
        return {namespace: VerificationState.READ if self._sides_read.get(namespace, 0) == 2
                else VerificationState.READING if running else VerificationState.PENDING
                for namespace in self._namespaces}

    @property
    def complete(self) -> bool:
        """Every namespace of both sides is in the ledger (the pass ended, and was not stopped)."""
        return not self.running and self._complete

    def wait(self, timeout: float | None = None) -> bool:
        """True once every namespace of both sides is in the ledger."""
        self._thread.join(timeout)
        return self._complete

    def _run(self) -> None:
        started = time.monotonic()
        try:
            unread = [(side, namespace) for namespace in self._namespaces for side in Side
                      if not self._ledger.passed(side, namespace)]
            self._complete = all(on_both_sides(self._read_side, *self._clients))
            if self._complete and unread:
                log.info("verification pass done: %d namespace(s) in the ledger on both sides in %.1f s "
                         "(%d side(s) read, the others recorded before)", len({namespace for _, namespace in unread}),
                         time.monotonic() - started, len(unread))
            elif self._complete:
                log.info("verification pass: the ledger already holds both sides of every namespace")
        except (PyMongoError, sqlite3.Error) as error:
            log.warning("the verification pass stopped (%s): cutover will read every document", type(error).__name__)
        finally:
            self._on_end()

    def _read_side(self, client: MongoClient[Any], side: Side) -> bool:
        read = False
        for namespace in self._namespaces:
            if self._ledger.passed(side, namespace):
                self._side_read(namespace)
                continue
            read = True
            if not self._read_namespace(client, side, namespace):
                return False
            self._side_read(namespace)
        if side is Side.SOURCE and (read or not self._ledger.sample_keys()):
            self._ledger.draw_sample(self._namespaces, self._sample)
        return True


    def _read_namespace(self, client: MongoClient[Any], side: Side, namespace: str) -> bool:
        """One side of a namespace into the ledger; after a fault that passes, that side of it is read
        again from the start (`start_pass` forgets what the broken read recorded). False if stopped."""
        faults = Faults(client, f"reading {namespace} for verification")
        while True:
            try:
                self._ledger.start_pass(side, namespace)
                for batch in _batches(client, namespace):
                    self._ledger.record(side, namespace, batch)
                    faults.succeeded()
                    if self._stopping.is_set():
                        return False
                self._ledger.finish_pass(side, namespace)
                return True
            except PyMongoError as error:
                faults.passed_or_raise(error)

    def _side_read(self, namespace: str) -> None:
        with self._lock:  # one thread per side counts
            self._sides_read[namespace] = self._sides_read.get(namespace, 0) + 1


def _read_keys(client: MongoClient[Any], side: Side, namespace: str, keys: Sequence[bytes],
                ledger: VerificationLedger) -> None:
    collection = raw_collection(client, namespace)
    for start in range(0, len(keys), _BATCH):
        part = keys[start:start + _BATCH]
        found = retry(client, f"reading changed documents of {namespace} again",
                      lambda part=part: list(collection.find({"_id": {"$in": [identifier_of(key)  # type: ignore[misc]
                                                                             for key in part]}})))
        ledger.replace(side, namespace, part, found)


def verify_changed(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
                   ledger: VerificationLedger, sample: int = 20) -> VerifyReport:
    """Read again, on both sides, the documents changed since the ledger recorded them; compare the
    ledger's digests. Needs a finished `VerificationPass`."""
    read_changed(source, target, namespaces, ledger)
    return compare_in_ledger(namespaces, ledger, sample)


def read_changed(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
                 ledger: VerificationLedger, also_read: Mapping[str, Sequence[bytes]] | None = None) -> int:
    """The first half of `verify_changed`, the servers' part: the changed documents, and those of
    `also_read` in the same queries, read again into the ledger on both sides. Returns how many
    documents were asked for on each side."""
    dirty = {namespace: ledger.dirty_keys(namespace) for namespace in namespaces}
    log.info("verifying through the ledger: reading again %d changed document(s) on both sides",
             sum(len(keys) for keys in dirty.values()))
    for namespace, keys in (also_read or {}).items():
        dirty[namespace] = list(set(dirty.get(namespace, [])) | set(keys))
    return read_again(source, target, dirty, ledger)


def read_again(source: MongoClient[Any], target: MongoClient[Any], keys: Mapping[str, Sequence[bytes]],
               ledger: VerificationLedger) -> int:
    """These documents read again on both sides into the ledger, found or not; how many were asked for."""

    def read_side(client: MongoClient[Any], side: Side) -> None:
        for namespace, part in keys.items():
            _read_keys(client, side, namespace, part, ledger)

    on_both_sides(read_side, source, target)
    return sum(len(part) for part in keys.values())


def compare_in_ledger(namespaces: Sequence[str], ledger: VerificationLedger, sample: int = 20) -> VerifyReport:
    """The second half of `verify_changed`, the engine's part: both sides compared inside the ledger."""
    return VerifyReport(tuple(_compare_in_ledger(namespace, ledger, sample) for namespace in namespaces))


def _compare_in_ledger(namespace: str, ledger: VerificationLedger, sample: int) -> NamespaceComparison:
    """Both sides' kept counts and hashes; the keys that differ are looked for (a join over the whole
    namespace) only when those disagree, so that an equal namespace costs the same however large."""
    counts = ledger.count(Side.SOURCE, namespace), ledger.count(Side.TARGET, namespace)
    hashes = ledger.hash_of(Side.SOURCE, namespace), ledger.hash_of(Side.TARGET, namespace)
    mismatched, mismatch_count = (([], 0) if counts[0] == counts[1] and hashes[0] == hashes[1]
                                  else ledger.mismatched_keys(namespace, sample))
    return NamespaceComparison(
        namespace=namespace,
        source_count=counts[0],
        target_count=counts[1],
        source_hash=hashes[0],
        target_hash=hashes[1],
        mismatched_ids=tuple(identifier_of(key) for key in mismatched),
        mismatch_count=mismatch_count,
    )
