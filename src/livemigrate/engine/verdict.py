"""The cutover's verdict: COMPLETE only on evidence that does not depend on the change stream.

The ledger (`ledger.py`) makes a cutover cheap — it reads again only what the change stream said
had changed — but that makes it as blind as the stream: an event the stream never sent, or one the
engine did not understand, marks nothing. So the ledger is one witness of three:

1. the ledger's re-read of the changed documents;
2. both sides' counts of every namespace, planned or created since (`evidence.py`), read while the
   ledger re-reads, so that they add little to the cutover;
3. a sample: documents drawn at random from the source's keys when the verification pass ended,
   read again on both sides in the same queries as the changed ones, whatever the stream said.
   Counts see inserts and deletes a stream missed; the sample sees updates.

When all three agree the migration is COMPLETE. Any disagreement, or a ledger that cannot be used,
reads every document of both sides; the difference that remains then is the verdict: FAILED, with
the namespaces and their first `_id`s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.evidence import Evidence, timed_counts
from livemigrate.engine.ledger import VerificationLedger, identifier_of
from livemigrate.engine.verify import VerifyReport, verify, verify_changed

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
                       ledger: VerificationLedger, *, exact_counts: bool = False,
                       mismatch_sample: int = 20) -> tuple[VerifyReport, Evidence]:
    """The ledger's re-read, with the sample in its queries, and both sides' counts meanwhile."""
    sampled = {namespace: keys for namespace, keys in ledger.sample_keys().items() if namespace in namespaces}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verdict-counts") as pool:
        counting = pool.submit(timed_counts, source, target, namespaces, exact=exact_counts)
        report = verify_changed(source, target, namespaces, ledger, mismatch_sample, also_read=sampled)
        on_source, on_target, seconds = counting.result()
    mismatches = {namespace: tuple(identifier_of(key) for key in differing)
                  for namespace, keys in sampled.items() if (differing := ledger.differing(namespace, keys))}
    evidence = Evidence(on_source, on_target, sum(len(keys) for keys in sampled.values()), mismatches, seconds)
    return report, evidence


def reach_verdict(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
                  ledger: VerificationLedger | None, *, exact_counts: bool = False,
                  mismatch_sample: int = 20) -> Verdict:
    """With `ledger` None (unusable, or never filled), read every document at once."""
    if ledger is None:
        return Verdict(verify(source, target, namespaces, mismatch_sample), None, True)
    report, evidence = through_the_ledger(source, target, namespaces, ledger, exact_counts=exact_counts,
                                          mismatch_sample=mismatch_sample)
    if report.equal and evidence.agrees:
        log.info("independent checks: %s", evidence.describe())
        return Verdict(report, evidence, False)
    if not evidence.agrees:
        log.warning("the change stream does not account for %s", evidence.describe())
    if not report.equal:
        log.info("the ledger shows differences in %s; confirming by reading every document",
                 ", ".join(c.namespace for c in report.namespaces if not c.equal))
    else:
        log.info("the ledger agrees but the counts or the sample do not; confirming by reading every document")
    return Verdict(verify(source, target, namespaces, mismatch_sample), evidence, True)
