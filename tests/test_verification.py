"""Verification through the ledger: both sides read once after the copy, cutover reading again only the
documents changed since — checked against reading everything, on two nx-27017 servers."""

from __future__ import annotations

import re
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Timestamp
from bson.raw_bson import RawBSONDocument
from pymongo import MongoClient

from livemigrate.engine.digests import digest_of, document_key, identifier_of, namespace_hash
from livemigrate.engine.ledger import Side, VerificationLedger
from livemigrate.engine.verify.passes import VerificationPass, VerifyReport, verify, verify_changed
from tests.engine_support import MigrateProcess, Writer, seed
from tests.nx import NxServer
from tests.support import wait_for as wait_until
from tests.wire_proxy import NoWriteBlockProxy, StandaloneProxy, WriteBlockProxy

IDENTIFIERS: list[Any] = [ObjectId(), 7, Int64(7), 2**40, 1.5, "héllo", "", {"a": 1, "b": [1, 2]},
                          Binary(b"\x00\x01", 4), b"raw", True, datetime(2020, 1, 2, 3, 4, 5), None,
                          Timestamp(1, 2), Decimal128("1.5"), MinKey(), MaxKey()]


@pytest.mark.parametrize("identifier", IDENTIFIERS, ids=lambda value: type(value).__name__)
def test_the_key_read_from_a_raw_document_is_the_key_of_its_id(identifier: Any) -> None:
    # The copy and the pass read keys in place from raw BSON; change events give decoded `_id`s.
    raw = RawBSONDocument(bson.encode({"_id": identifier, "x": 1}))
    key, _ = digest_of(raw)
    assert key == document_key(raw["_id"])
    assert identifier_of(key) == identifier and document_key(identifier_of(key)) == key


def test_a_document_whose_id_is_not_first_still_gets_its_key() -> None:
    key, _ = digest_of(RawBSONDocument(bson.encode({"x": 1, "_id": "late"})))
    assert identifier_of(key) == "late"


def test_a_batch_recorded_again_with_changes_leaves_one_row_per_document_and_the_hash_of_the_last(
        tmp_path: Path) -> None:
    # A copy resumed over its last batch records it again: the rows are written many to a statement,
    # and a key already there fails the whole statement, so the batch is written again replacing rows.
    def documents(first: int, last: int, edition: int) -> list[RawBSONDocument]:
        return [RawBSONDocument(bson.encode({"_id": f"doc{index:04d}", "edition": edition}))
                for index in range(first, last)]

    ledger = VerificationLedger(tmp_path / "ledger.sqlite")
    ledger.start_pass(Side.TARGET, "shop.orders")
    ledger.record(Side.TARGET, "shop.orders", documents(0, 250, edition=1))
    ledger.record(Side.TARGET, "shop.orders", documents(200, 450, edition=2))  # 50 of them again, changed
    ledger.finish_pass(Side.TARGET, "shop.orders")

    expected = dict(digest_of(document) for document in documents(0, 200, 1) + documents(200, 450, 2))
    assert ledger.count(Side.TARGET, "shop.orders") == 450
    assert sorted(ledger.digest_values(Side.TARGET, "shop.orders")) == sorted(expected.values())
    assert ledger.hash_of(Side.TARGET, "shop.orders") == namespace_hash(expected.values())


NAMESPACES = ["shop.orders", "shop.users"]


def _same_documents(source: MongoClient[Any], target: MongoClient[Any]) -> None:
    object_id = ObjectId()
    for client in (source, target):
        client.shop.orders.insert_many([{"_id": f"order{index:04d}", "total": index, "lines": [index, 1]}
                                        for index in range(300)])
        client.shop.users.insert_many([{"_id": index, "name": f"user {index}"} for index in range(50)]
                                      + [{"_id": Int64(1000), "name": "wide"}, {"_id": object_id, "name": "oid"}])


def _comparable(report: VerifyReport) -> list[tuple[Any, ...]]:
    return [(c.namespace, c.source_count, c.target_count, c.source_hash, c.target_hash, c.equal)
            for c in report.namespaces]


def test_the_ledger_reads_again_only_what_changed_and_agrees_with_reading_everything(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source_server, target_server = servers
    ledger = VerificationLedger(tmp_path / "ledger" / VerificationLedger.FILE_NAME)
    with source_server.client() as source, target_server.client() as target:
        _same_documents(source, target)
        ledger.begin("test")
        ended = threading.Event()
        assert VerificationPass(source, target, ledger, NAMESPACES, threading.Event(), ended.set).wait(timeout=60)
        assert ended.is_set()

        # Changes replicated the way the engine replicates them, each marking its document dirty.
        for client in (source, target):
            client.shop.orders.update_one({"_id": "order0007"}, {"$set": {"total": -1}})
            client.shop.orders.delete_one({"_id": "order0008"})
            client.shop.orders.insert_one({"_id": "order9999", "total": 9999})
            client.shop.users.update_one({"_id": Int64(1000)}, {"$set": {"name": "still wide"}})
        ledger.mark_dirty([("shop.orders", document_key("order0007")), ("shop.orders", document_key("order0008")),
                           ("shop.orders", document_key("order9999")), ("shop.users", document_key(Int64(1000)))])

        through_ledger = verify_changed(source, target, NAMESPACES, ledger)
        everything = verify(source, target, NAMESPACES)
        assert through_ledger.equal and everything.equal
        assert _comparable(through_ledger) == _comparable(everything)
        assert through_ledger.namespaces[0].source_count == 300  # one deleted, one inserted
        paged = list(ledger.digest_values(Side.TARGET, "shop.orders", page=7))
        assert len(paged) == 300 and sorted(paged) == sorted(ledger.digest_values(Side.TARGET, "shop.orders"))

        # A difference behind a changed document is found, and named.
        target.shop.orders.update_one({"_id": "order0010"}, {"$set": {"total": "tampered"}})
        source.shop.orders.update_one({"_id": "order0010"}, {"$set": {"seen": True}})
        target.shop.orders.update_one({"_id": "order0010"}, {"$set": {"seen": True}})
        ledger.mark_dirty([("shop.orders", document_key("order0010"))])
        found = verify_changed(source, target, NAMESPACES, ledger)
        assert not found.equal
        orders = found.namespaces[0]
        assert orders.mismatched_ids == ("order0010",) and orders.mismatch_count == 1
        assert _comparable(found) == _comparable(verify(source, target, NAMESPACES))
    ledger.close()


def test_a_pass_interrupted_is_finished_by_the_next_run_from_the_same_ledger(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    source_server, target_server = servers
    path = tmp_path / "ledger" / VerificationLedger.FILE_NAME
    with source_server.client() as source, target_server.client() as target:
        _same_documents(source, target)
        first = VerificationLedger(path)
        first.begin("test")
        stopped = threading.Event()
        stopped.set()  # stops after the first batch of each side
        assert not VerificationPass(source, target, first, NAMESPACES, stopped, lambda: None).wait(timeout=60)
        first.close()

        again = VerificationLedger(path)
        assert again.belongs_to("test")
        assert VerificationPass(source, target, again, NAMESPACES, threading.Event(), lambda: None).wait(timeout=60)
        assert _comparable(verify_changed(source, target, NAMESPACES, again)) == \
            _comparable(verify(source, target, NAMESPACES))
        again.close()


def test_a_difference_on_the_destination_fails_the_cutover_through_the_ledger(servers: tuple[NxServer, NxServer],
                                                                            tmp_path: Path) -> None:
    source, target = servers
    state = tmp_path / "state"
    with source.client() as source_client, target.client() as target_client:
        seed(source_client, total=12_000)
        first = MigrateProcess(source.uri, target.uri, state, "--workers", "1", "--batch-size", "100").start()
        assert wait_until(lambda: first.copied() >= 300, timeout=120), first.log_text()
        first.kill()
        assert first.phase() == "copy"  # so the verification pass has not read the destination yet
        # Written to the destination by someone else: not on the source, and no change event says so.
        target_client.inventory.alpha.insert_one({"_id": "intruder", "quantity": 0})

        second = MigrateProcess(source.uri, target.uri, state, "--workers", "1", "--batch-size", "100").start()
        assert wait_until(lambda: "verification pass done" in second.log_text(), timeout=120), second.log_text()
        assert second.cutover_and_wait() == 1, second.log_text()
    _found_through_the_ledger(second.log_text(), reread=0, namespace="inventory.alpha", identifier="intruder")
    # nx-27017 accepts setUserWriteBlockMode too: writes blocked at the drain, allowed again after the failure.
    log = second.log_text()
    assert "the source blocks user writes" in log and "user writes to the source are allowed again" in log


def test_a_write_to_the_destination_after_the_pass_fails_the_cutover(servers: tuple[NxServer, NxServer],
                                                                      tmp_path: Path) -> None:
    source, target = servers
    six = WriteBlockProxy(source.port).start()  # the source as a MongoDB 6.0, which blocks user writes
    try:
        with source.client() as source_client, target.client() as target_client:
            seed(source_client, total=1200)
            migration = MigrateProcess(six.uri, target.uri, tmp_path / "state").start()
            assert wait_until(lambda: "verification pass done" in migration.log_text(), timeout=120), \
                migration.log_text()
            # Written to the destination by someone else, to a document the source never changes again.
            target_client.inventory.beta.update_one({"_id": "beta000003"}, {"$set": {"planted": True}})
            assert migration.cutover_and_wait() == 1, migration.log_text()
    finally:
        six.stop()
    _found_through_the_ledger(migration.log_text(), reread=1, namespace="inventory.beta", identifier="beta000003")
    # Writes were blocked when the drain began, and allowed again when the cutover failed.
    assert six.write_block_modes == [True, False], migration.log_text()
    assert "user writes to the source are allowed again" in migration.log_text()


def test_writes_that_reach_a_source_without_write_blocking_after_the_drain_began_are_applied_and_reported(
        servers: tuple[NxServer, NxServer], tmp_path: Path) -> None:
    """A source older than 6.0 cannot block writes: the application goes on writing into the drain. The
    proxy holds the refusal 3 s (the drain waits on it), the writer stops 2.5 s into it: every write is
    in the change stream before the drain reads it — applied, equal, and counted, as writes that came
    after the drain began (a change's clusterTime counts whole seconds: 1 s of margin)."""
    source, target = servers
    old = NoWriteBlockProxy(source.port, refuse_after_seconds=3.0).start()
    try:
        with source.client() as source_client:
            seed(source_client, total=600)
            migration = MigrateProcess(old.uri, target.uri, tmp_path / "state").start()
            assert wait_until(migration.replicating, timeout=120), migration.log_text()
            writer = Writer(source_client, per_second=100)
            writer.start()
            try:
                assert migration.process is not None
                migration.process.send_signal(signal.SIGUSR1)  # the cutover, with the application still writing
                assert old.asked.wait(timeout=60), migration.log_text()
                time.sleep(2.5)
            finally:
                writer.finish()
            assert migration.process.wait(timeout=120) == 0, migration.log_text()
    finally:
        old.stop()
    log = migration.log_text()
    assert "the source did not block writes" in log and "no such command" in log
    late = re.search(r"(\d+) write\(s\) reached the source after the cutover's drain began", log)
    assert late is not None and int(late.group(1)) > 0, log
    assert log.rstrip().endswith("EQUAL"), log


def test_a_write_to_the_destination_between_runs_fails_the_later_cutover(servers: tuple[NxServer, NxServer],
                                                                         tmp_path: Path) -> None:
    source, target = servers
    state = tmp_path / "state"
    with source.client() as source_client, target.client() as target_client:
        seed(source_client, total=1200)
        ready = MigrateProcess(source.uri, target.uri, state, "--until-caught-up").start()
        assert ready.process is not None and ready.process.wait(timeout=120) == 0, ready.log_text()
        assert "both sides are read for verification" in ready.log_text()
        target_client.people.gamma.delete_one({"_id": "gamma000007"})  # while no migration runs

        later = MigrateProcess(source.uri, target.uri, state).start()
        assert later.cutover_and_wait() == 1, later.log_text()
    assert "the ledger already holds both sides" in later.log_text()  # the first run's reading was kept,
    # and the destination's streams resumed where it left them:
    _found_through_the_ledger(later.log_text(), reread=1, namespace="people.gamma", identifier="gamma000007")


def _found_through_the_ledger(log: str, *, reread: int, namespace: str, identifier: str) -> None:
    """The cutover read again at most `reread` changed documents (fewer when a round of the ledger's
    refresh read them first), the ledger showed the difference, reading the one document it disagrees on
    again confirmed it — no namespace read whole — and the report names it."""
    changed = re.search(r"reading again (\d+) changed document\(s\)", log)
    assert changed is not None and int(changed.group(1)) <= reread, log
    assert f"the ledger disagrees on 1 document(s) in {namespace}; reading those again on both sides" in log
    assert "reading every document" not in log
    assert identifier in log and "DIFFERENT" in log


def test_a_destination_without_change_streams_is_verified_by_reading_everything(servers: tuple[NxServer, NxServer],
                                                                                tmp_path: Path) -> None:
    source, target = servers
    standalone = StandaloneProxy(target.port).start()  # refuses change streams, as a standalone mongod does
    try:
        with source.client() as source_client:
            seed(source_client, total=600)
        migration = MigrateProcess(source.uri, standalone.uri, tmp_path / "state").start()
        assert migration.cutover_and_wait() == 0, migration.log_text()
    finally:
        standalone.stop()
    log = migration.log_text()
    assert "the destination cannot be watched" in log and "only supported on replica sets" in log
    assert "verifying every document (the destination cannot be watched" in log
    assert "EQUAL" in log
