"""The cutover's verdict: COMPLETE only on evidence that does not depend on the change stream, at a
cost that follows the differences, not the data.

The ledger (`ledger.py`) makes a cutover cheap — it reads again only what the change stream said
had changed — but that makes it as blind as the stream: an event the stream never sent, or one the
engine did not understand, marks nothing. So the ledger is one witness of three:

1. the ledger's re-read of the changed documents;
2. both sides' counts of every namespace, planned or created since (`verify/evidence.py`), read after the
   drain while the ledger compares (engine work, the servers idle), so that they add little;
3. a sample: documents drawn at random from the source's keys when the verification pass ended,
   read again on both sides in the same queries as the changed ones, whatever the stream said.
   Counts see inserts and deletes a stream missed; the sample sees updates.

When all three agree the migration is COMPLETE. When they do not, the cutover looks only where the
disagreement is, so that its downtime does not grow with the data:
- the ledger disagrees on some documents (a mark it missed, a key it was told in another form, a
  real difference): those documents, and only those, are read again on both sides. Equal now, the
  verdict goes on; still different, they are the verdict's differences — FAILED, naming them.
- a namespace's counts disagree and the ledger does not show the same difference: the ledger cannot
  say where it is, so that namespace alone is read whole, and what that read finds stands.
Only a ledger that cannot be used at all (a rename or a drop it cannot follow, a pass that never
ended) has every document of every namespace read (`read_everything`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.digests import identifier_of
from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.verify.evidence import Evidence, count_both_sides
from livemigrate.engine.verify.passes import VerifyReport, compare_in_ledger, read_again, read_changed, verify

log = logging.getLogger("livemigrate.engine.verdict")


@dataclass(frozen=True)
class Verdict:
    report: VerifyReport
    evidence: Evidence | None  # None when every document was read from the start
    read_everything: bool  # every namespace read whole: the ledger could not be used
    read_again: int = 0  # documents the cutover read again on each side: changed, sampled, disagreed on
    read_whole: tuple[str, ...] = ()  # the namespaces read whole, document by document

    @property
    def equal(self) -> bool:
        return self.report.equal


def through_the_ledger(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
                       ledger: VerificationLedger, *, to_count: Callable[[], Sequence[str]] | None = None,
                       exact_counts: bool = False, mismatch_sample: int = 20) -> tuple[VerifyReport, Evidence, int]:
    """The ledger's re-read of `namespaces`, with the sample in its queries; then, while the ledger
    compares (engine work, with both servers idle), both sides' counts of `to_count()` — listed then
    too — or of `namespaces`. Also returns how many documents were read again on each side."""
    sampled = {namespace: keys for namespace, keys in ledger.sample_keys().items() if namespace in namespaces}
    read = read_changed(source, target, namespaces, ledger, also_read=sampled)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verdict-counts") as pool:
        counting = pool.submit(lambda: count_both_sides(source, target, to_count() if to_count else namespaces,
                                                        exact=exact_counts))
        report = compare_in_ledger(namespaces, ledger, mismatch_sample)
        both = counting.result()
    return report, Evidence(both, sum(len(keys) for keys in sampled.values()), _sample_mismatches(ledger, sampled)), read


def _sample_mismatches(ledger: VerificationLedger, sampled: dict[str, list[bytes]]) -> dict[str, tuple[Any, ...]]:
    return {namespace: tuple(identifier_of(key) for key in differing)
            for namespace, keys in sampled.items() if (differing := ledger.differing(namespace, keys))}


def reach_verdict(source: MongoClient[Any], target: MongoClient[Any], namespaces: Sequence[str],
                  ledger: VerificationLedger | None, *, to_count: Callable[[], Sequence[str]] | None = None,
                  exact_counts: bool = False, mismatch_sample: int = 20) -> Verdict:
    """With `ledger` None (unusable, or never filled), read every document of `namespaces` at once.
    Otherwise the ledger's `namespaces` are read again, `to_count()` (say, those planned and those
    created on the source since) counted, and where they disagree, only the disagreement is read:
    the documents the ledger disagrees on, and whole only a namespace whose counts it cannot explain."""
    if ledger is None:
        return Verdict(verify(source, target, namespaces, mismatch_sample), None, True, read_whole=tuple(namespaces))
    report, evidence, read = through_the_ledger(source, target, namespaces, ledger, to_count=to_count,
                                                exact_counts=exact_counts, mismatch_sample=mismatch_sample)
    if report.equal and evidence.agrees:
        log.info("independent checks: %s", evidence.describe())
        return Verdict(report, evidence, False, read_again=read)
    if not report.equal:
        report, evidence, read = _read_disagreements(source, target, ledger, report, evidence, read, mismatch_sample)
    unexplained = _unexplained_counts(report, evidence)
    if unexplained:
        report = _read_whole(source, target, report, unexplained, evidence, mismatch_sample)
    elif report.equal:
        log.info("independent checks: %s", evidence.describe())
    else:
        log.warning("%s still differ(s) once read again: %s", ", ".join(
            c.namespace for c in report.namespaces if not c.equal), report.describe_differences())
    return Verdict(report, evidence, False, read_again=read, read_whole=tuple(unexplained))


def _read_disagreements(source: MongoClient[Any], target: MongoClient[Any], ledger: VerificationLedger,
                        report: VerifyReport, evidence: Evidence, read: int,
                        mismatch_sample: int) -> tuple[VerifyReport, Evidence, int]:
    """The documents the ledger disagrees on, read again on both sides and compared again: what the
    ledger knew of them may be stale (a change whose mark it missed), or they really differ."""
    disagreeing = {c.namespace: ledger.disagreeing_keys(c.namespace) for c in report.namespaces if not c.equal}
    log.info("the ledger disagrees on %d document(s) in %s; reading those again on both sides",
             sum(len(keys) for keys in disagreeing.values()), ", ".join(disagreeing))
    read += read_again(source, target, disagreeing, ledger)
    again = {c.namespace: c for c in compare_in_ledger(list(disagreeing), ledger, mismatch_sample).namespaces}
    report = VerifyReport(tuple(again.get(c.namespace, c) for c in report.namespaces))
    if report.equal:
        log.info("read again, the documents the ledger disagreed on are equal on both sides")
    sampled = {namespace: keys for namespace, keys in ledger.sample_keys().items()
               if namespace in evidence.sample_mismatches}
    return report, replace(evidence, sample_mismatches=_sample_mismatches(ledger, sampled)), read


def _unexplained_counts(report: VerifyReport, evidence: Evidence) -> list[str]:
    """The namespaces whose counts differ between the servers by other than what the ledger shows:
    a difference the ledger holds no key of, which only reading the whole namespace can place."""
    in_ledger = {c.namespace: c.source_count - c.target_count for c in report.namespaces}
    return [namespace for namespace, (on_source, on_target) in evidence.count_differences.items()
            if in_ledger.get(namespace) != on_source - on_target]


def _read_whole(source: MongoClient[Any], target: MongoClient[Any], report: VerifyReport, namespaces: list[str],
                evidence: Evidence, mismatch_sample: int) -> VerifyReport:
    """`namespaces` read whole on both sides; what that finds replaces the ledger's comparison of them."""
    log.warning("evidence independent of the change stream disagrees: %s", evidence.describe())
    log.info("the ledger cannot place the difference in the counts of %s; reading every document of %s",
             ", ".join(namespaces), "it" if len(namespaces) == 1 else "them")
    whole = {c.namespace: c for c in verify(source, target, namespaces, mismatch_sample).namespaces}
    kept = tuple(whole.pop(c.namespace, c) for c in report.namespaces)
    return VerifyReport(kept + tuple(whole.values()))
