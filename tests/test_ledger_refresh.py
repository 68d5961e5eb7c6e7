"""The ledger's refresh while replicating: documents changed are read again as they change, so that the
cutover reads only what changed since — and nothing a round reads mid-change is lost."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from livemigrate.engine.digests import document_key
from livemigrate.engine.ledger import VerificationLedger
from livemigrate.engine.verify.passes import VerificationPass
from livemigrate.engine.verify.refresh import LedgerRefresh
from livemigrate.engine.verify.verdict import reach_verdict
from tests.nx import NxServer

NAMESPACE = "shop.orders"


def _passed_ledger(source: MongoClient[Any], target: MongoClient[Any], tmp_path: Path) -> VerificationLedger:
    """A ledger holding both sides, as the verification pass leaves it."""
    ledger = VerificationLedger(tmp_path / VerificationLedger.FILE_NAME)
    ledger.begin("refresh")
    assert VerificationPass(source, target, ledger, [NAMESPACE], threading.Event(), lambda: None).wait(timeout=60)
    return ledger


def test_a_mark_made_while_a_round_reads_outlives_the_round(tmp_path: Path) -> None:
    ledger = VerificationLedger(tmp_path / VerificationLedger.FILE_NAME)
    ledger.mark_dirty([(NAMESPACE, document_key("read"))])
    through = ledger.marks_made()  # the round begins: it reads what is marked up to here
    ledger.mark_dirty([(NAMESPACE, document_key("read")), (NAMESPACE, document_key("new"))])  # marked meanwhile
    ledger.clear_marks(through, [NAMESPACE])
    assert sorted(ledger.dirty_keys(NAMESPACE)) == sorted([document_key("read"), document_key("new")])
    ledger.clear_marks(ledger.marks_made(), [NAMESPACE])
    assert ledger.dirty_keys(NAMESPACE) == []
    ledger.close()


def test_rounds_leave_the_cutover_only_what_changed_since_and_a_change_read_mid_way_is_read_again(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source_server, target_server = servers
    with source_server.client() as source, target_server.client() as target:
        for client in (source, target):
            client.shop.orders.insert_many([{"_id": f"order{index:03d}", "total": index} for index in range(300)])
        ledger = _passed_ledger(source, target, tmp_path)
        refresh = LedgerRefresh(source, target, ledger, lambda: [NAMESPACE], ready=lambda: True, every_seconds=60)

        # Replicated changes, marked as the replay marks them: one round reads them, and clears their marks.
        for client in (source, target):
            client.shop.orders.update_many({"total": {"$lt": 50}}, {"$set": {"seen": True}})
        ledger.mark_dirty([(NAMESPACE, document_key(f"order{index:03d}")) for index in range(50)])
        assert refresh.refresh() == 50 and ledger.dirty_keys(NAMESPACE) == []

        # A change the round reads half-way: the source has it, its event is not applied yet.
        source.shop.orders.update_one({"_id": "order100"}, {"$set": {"total": -1}})
        ledger.mark_dirty([(NAMESPACE, document_key("order100"))])
        assert refresh.refresh() == 1
        target.shop.orders.update_one({"_id": "order100"}, {"$set": {"total": -1}})  # applied now, and marked
        ledger.mark_dirty([(NAMESPACE, document_key("order100"))])

        verdict = reach_verdict(source, target, [NAMESPACE], ledger)
        assert verdict.equal and not verdict.read_whole
        assert verdict.read_again == 1  # only what changed since the last round (no sample drawn here)

        # A change the round reads, whose event never comes: the ledger keeps the difference for the verdict.
        source.shop.orders.delete_one({"_id": "order200"})
        ledger.mark_dirty([(NAMESPACE, document_key("order200"))])
        refresh.refresh()
        verdict = reach_verdict(source, target, [NAMESPACE], ledger)
        assert not verdict.equal and verdict.report.namespaces[0].mismatched_ids == ("order200",)
        ledger.close()
