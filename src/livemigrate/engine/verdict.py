"""The cutover's verdict: COMPLETE only on evidence that does not depend on the change stream.

The ledger (`ledger.py`) makes a cutover cheap — it reads again only what the change stream said
had changed — but that makes it as blind as the stream: an event the stream never sent, or one the
engine did not understand, marks nothing. So the ledger is one witness of three:

1. the ledger's re-read of the changed documents;
2. both sides' counts of every namespace, planned or created since (`evidence.py`), read after the
   drain while the ledger compares (engine work, the servers idle), so that they add little;
3. a sample: documents drawn at random from the source's keys when the verification pass ended,
   read again on both sides in the same queries as the changed ones, whatever the stream said.
   Counts see inserts and deletes a stream missed; the sample sees updates.

When all three agree the migration is COMPLETE. Any disagreement, or a ledger that cannot be used,
reads every document of both sides; the difference that remains then is the verdict: FAILED, with
the namespaces and their first `_id`s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.evidence import Evidence, count_both_sides
from livemigrate.engine.ledger import VerificationLedger, identifier_of
from livemigrate.engine.verify import VerifyReport, compare_in_ledger, read_changed, verify

log = logging.getLogger("livemigrate.engine.verdict")


@dataclass(frozen=True)
class Verdict:
    report: VerifyReport
    evidence: Evidence | None  # None when every document was read from the start
    read_everything: bool

    @property
    def equal(self) -> bool:
        return self.report.equal


def through_the_ledger(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
                       ledger: VerificationLedger, *, to_count: Callable[[], Sequence[str]] | None = None,
                       exact_counts: bool = False, mismatch_sample: int = 20) -> tuple[VerifyReport, Evidence]:
    """The ledger's re-read of `namespaces`, with the sample in its queries; then, while the ledger
    compares (engine work, with both servers idle), both sides' counts of `to_count()` — listed then
    too — or of `namespaces`."""
    sampled = {namespace: keys for namespace, keys in ledger.sample_keys().items() if namespace in namespaces}
    read_changed(source, target, namespaces, ledger, also_read=sampled)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verdict-counts") as pool:
        counting = pool.submit(lambda: count_both_sides(source, target, to_count() if to_count else namespaces,
                                                        exact=exact_counts))
        report = compare_in_ledger(namespaces, ledger, mismatch_sample)
        both = counting.result()
    mismatches = {namespace: tuple(identifier_of(key) for key in differing)
                  for namespace, keys in sampled.items() if (differing := ledger.differing(namespace, keys))}
    return report, Evidence(both, sum(len(keys) for keys in sampled.values()), mismatches)


def reach_verdict(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
                  ledger: VerificationLedger | None, *, to_count: Callable[[], Sequence[str]] | None = None,
                  exact_counts: bool = False, mismatch_sample: int = 20) -> Verdict:
    """With `ledger` None (unusable, or never filled), read every document of `namespaces` at once.
    Otherwise the ledger's `namespaces` are read again, `to_count()` (say, those planned and those
    created on the source since) counted, and everything read again over both if they disagree."""
    if ledger is None:
        return Verdict(verify(source, target, namespaces, mismatch_sample), None, True)
    report, evidence = through_the_ledger(source, target, namespaces, ledger, to_count=to_count,
                                          exact_counts=exact_counts, mismatch_sample=mismatch_sample)
    if report.equal and evidence.agrees:
        log.info("independent checks: %s", evidence.describe())
        return Verdict(report, evidence, False)
    if not evidence.agrees:
        log.warning("evidence independent of the change stream disagrees: %s", evidence.describe())
    if not report.equal:
        log.info("the ledger shows differences in %s; confirming by reading every document",
                 ", ".join(c.namespace for c in report.namespaces if not c.equal))
    else:
        log.info("the ledger agrees but the counts or the sample do not; confirming by reading every document")
    everything = sorted(set(namespaces) | set(evidence.counts.namespaces))
    return Verdict(verify(source, target, everything, mismatch_sample), evidence, True)
