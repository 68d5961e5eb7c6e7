"""The fault proxy does what it says, seen from pymongo against nx-27017: each fault arrives as the
exception a driver raises for it in front of MongoDB, error labels follow the server's rules (and so
pymongo retries or resumes exactly when it would), cursors outlive the reset of their connection, the
handshake is never touched, and a seed replays the same faults.

One nx-27017 for the module (starting one costs ~0.6 s); each test uses its own collections. A network
fault makes pymongo clear its pool and re-check the server, which costs up to 0.5 s (its minimum
heartbeat interval) before the next operation: the tests keep network faults few.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from pymongo import CursorType, MongoClient
from pymongo.change_stream import ChangeStream
from pymongo.errors import AutoReconnect, NetworkTimeout, NotPrimaryError, OperationFailure, PyMongoError

from tests.fault_proxy import (
    CHANGE_STREAM_FATAL,
    CHANGE_STREAM_GETMORE,
    COPY_READ,
    ERROR,
    INSERT,
    PROTECTED,
    RESET_BEFORE_FORWARD,
    RESET_BEFORE_REPLY,
    RESET_MID_REPLY,
    STALL,
    UPDATE_DELETE,
    FaultProxy,
    seed_from_env,
    server_labels,
)
from tests.nx import NxServer


@pytest.fixture(scope="module")
def nx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NxServer]:
    server = NxServer(Path(tmp_path_factory.mktemp("fault-proxy-nx"))).start()
    yield server
    server.stop()


@pytest.fixture
def direct(nx: NxServer) -> Iterator[MongoClient[Any]]:
    """A client straight to nx-27017: what the server really holds, past the proxy."""
    client = nx.client()
    yield client
    client.close()


Proxy = Callable[..., FaultProxy]
Client = Callable[..., MongoClient[Any]]


@pytest.fixture
def proxy(nx: NxServer) -> Iterator[Proxy]:
    started: list[FaultProxy] = []

    def start(**options: Any) -> FaultProxy:
        started.append(FaultProxy(nx.port, **options).start())
        return started[-1]

    yield start
    for each in started:
        each.stop()


@pytest.fixture
def client() -> Iterator[Client]:
    """pymongo through a proxy; retries off unless a test turns them on, so that a fault is seen as raised."""
    opened: list[MongoClient[Any]] = []

    def open_client(through: FaultProxy, **options: Any) -> MongoClient[Any]:
        options = {"serverSelectionTimeoutMS": 5000, "retryReads": False, "retryWrites": False, **options}
        opened.append(MongoClient(through.uri, **options))
        return opened[-1]

    yield open_client
    for each in opened:
        each.close()


def next_change(stream: ChangeStream[Any], timeout: float = 5.0) -> Any:
    """nx-27017 ignores maxAwaitTimeMS (its getMore answers at once): poll until a change or the stream ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stream.alive:
        change = stream.try_next()
        if change is not None:
            return change
    return None


def _round_trip(sock: socket.socket, command: dict[str, Any], request_id: int) -> dict[str, Any]:
    payload = struct.pack("<i", 0) + b"\x00" + bson.encode(command)
    sock.sendall(struct.pack("<iiii", 16 + len(payload), request_id, 0, 2013) + payload)
    data = b""
    while len(data) < 4 or len(data) < struct.unpack_from("<i", data)[0]:
        chunk = sock.recv(65536)
        assert chunk, "nx-27017 closed the connection"
        data += chunk
    return bson.decode(data[21:])


def test_nx_continues_a_cursor_from_another_connection_but_ends_it_with_its_own(
        nx: NxServer, direct: MongoClient[Any]) -> None:
    """What the parking rests on, measured on the raw wire: nx-27017 finds a cursor by its id from any
    connection (as MongoDB does), and when the connection that opened it closes, a getMore answers an
    empty, finished batch (MongoDB would keep the cursor)."""
    direct.wire.raw.insert_many([{"_id": f"r{i:02d}"} for i in range(20)])
    opener = socket.create_connection(("127.0.0.1", nx.port))
    other = socket.create_connection(("127.0.0.1", nx.port))
    try:
        cursor = _round_trip(opener, {"find": "raw", "batchSize": 5, "$db": "wire"}, 1)["cursor"]
        more = _round_trip(other, {"getMore": cursor["id"], "collection": "raw", "batchSize": 5, "$db": "wire"}, 2)
        assert (more["cursor"]["id"], len(more["cursor"]["nextBatch"])) == (cursor["id"], 5)
        opener.close()
        time.sleep(0.2)  # nx-27017 notices the close
        after = _round_trip(other, {"getMore": cursor["id"], "collection": "raw", "batchSize": 5, "$db": "wire"}, 3)
        assert after["cursor"] == {"id": 0, "ns": "wire.raw", "nextBatch": []}  # 10 documents silently lost
    finally:
        opener.close()
        other.close()


@pytest.mark.parametrize(("kind", "written"), [(RESET_BEFORE_FORWARD, 0), (RESET_BEFORE_REPLY, 1),
                                               (RESET_MID_REPLY, 1)])
def test_a_reset_is_an_autoreconnect_and_the_write_happened_or_not(
        proxy: Proxy, client: Client, direct: MongoClient[Any], kind: str, written: int) -> None:
    through = proxy()
    collection = client(through).resets[kind]
    through.inject_next(kind, on=INSERT)
    with pytest.raises(AutoReconnect) as raised:
        collection.insert_one({"_id": "one"})
    assert not isinstance(raised.value, NotPrimaryError)
    assert direct.resets[kind].count_documents({}) == written  # before the reply: applied, and the client can't know
    assert through.counts() == {kind: 1} and through.parked >= 1


def test_a_stall_past_the_socket_timeout_is_a_network_timeout(proxy: Proxy, client: Client,
                                                              direct: MongoClient[Any]) -> None:
    direct.stall.c.insert_one({"_id": "x"})
    through = proxy(stall_seconds=3.0)
    collection = client(through, socketTimeoutMS=300).stall.c
    through.inject_next(STALL, on=COPY_READ)
    started = time.monotonic()
    with pytest.raises(NetworkTimeout):
        collection.find_one()
    assert time.monotonic() - started < 2.0  # the client's timeout, not the stall
    assert collection.find_one() == {"_id": "x"}  # a timeout closes one connection; the next one works
    assert [(i.kind, i.command) for i in through.injected] == [(STALL, "find")]


def test_a_stall_without_a_socket_timeout_ends_in_a_dropped_connection(proxy: Proxy, client: Client) -> None:
    """The engine sets no socketTimeoutMS: a held reply then ends when the proxy drops the connection."""
    through = proxy(stall_seconds=0.5)
    through.inject_next(STALL, on=COPY_READ)
    started = time.monotonic()
    with pytest.raises(AutoReconnect) as raised:
        client(through).stall.c.find_one()
    assert not isinstance(raised.value, NetworkTimeout)
    assert time.monotonic() - started >= 0.5


@pytest.mark.parametrize(("code", "name", "not_primary"), [
    (10107, "NotWritablePrimary", True), (11602, "InterruptedDueToReplStateChange", True),
    (189, "PrimarySteppedDown", True), (91, "ShutdownInProgress", True), (6, "HostUnreachable", False),
    (89, "NetworkTimeout", False)])
def test_an_error_answer_is_the_servers_error(proxy: Proxy, client: Client, code: int, name: str,
                                             not_primary: bool) -> None:
    """pymongo takes the answer for the request's (it checks responseTo), and classifies it by code:
    the "not primary" and "node is recovering" codes as NotPrimaryError, the others as OperationFailure.
    A find is neither a retryable write nor a change stream: a server gives it no label."""
    through = proxy()
    through.inject_next(ERROR, on=COPY_READ, code=code)
    with pytest.raises(PyMongoError) as raised:
        client(through).errors.c.find_one()
    error = raised.value
    assert isinstance(error, NotPrimaryError | OperationFailure)
    assert isinstance(error, NotPrimaryError) == not_primary
    details = dict(error.details or {})
    assert (details.get("code"), details.get("codeName")) == (code, name)
    assert "errorLabels" not in details


def test_retryable_write_error_comes_only_with_a_retryable_write(proxy: Proxy, client: Client,
                                                                 direct: MongoClient[Any]) -> None:
    """pymongo sends txnNumber only to a replica-set member: to nx-27017 (a standalone) an insert is no
    retryable write, gets no label and fails; through a proxy that says "primary of rs0" it is one, gets
    RetryableWriteError, and pymongo retries it once, successfully."""
    standalone = proxy()
    standalone.inject_next(ERROR, on=INSERT, code=91)
    with pytest.raises(NotPrimaryError) as raised:
        client(standalone, retryWrites=True).retry.c.insert_one({"_id": "standalone"})
    assert "errorLabels" not in (raised.value.details or {})

    member = proxy(replica_set="rs0")
    member.inject_next(ERROR, on=INSERT, code=91)
    client(member, retryWrites=True).retry.c.insert_one({"_id": "member"})
    assert [(i.command, i.code, i.labels) for i in member.injected] == [
        ("insert", 91, ("RetryableWriteError", "NoWritesPerformed"))]
    assert sorted(d["_id"] for d in direct.retry.c.find()) == ["member"]


def test_a_change_stream_resumes_on_a_labelled_error_only(proxy: Proxy, client: Client,
                                                          direct: MongoClient[Any]) -> None:
    through = proxy()
    stream = client(through).streams.resumable.watch()
    direct.streams.resumable.insert_one({"_id": "a"})
    through.inject_next(ERROR, on=CHANGE_STREAM_GETMORE, code=89)
    assert next_change(stream)["documentKey"] == {"_id": "a"}  # resumed from its token, nothing lost
    assert [(i.command, i.labels) for i in through.injected] == [("getMore", ("ResumableChangeStreamError",))]

    direct.streams.resumable.insert_one({"_id": "b"})
    through.inject_next(ERROR, on=CHANGE_STREAM_GETMORE, code=89, labels=())  # as if the server had not labelled it
    with pytest.raises(OperationFailure) as raised:
        next_change(stream)
    assert raised.value.code == 89


def test_change_stream_fatal_error_ends_the_stream(proxy: Proxy, client: Client, direct: MongoClient[Any]) -> None:
    direct.streams.fatal.insert_one({"_id": "seen"})
    through = proxy()
    mongo = client(through)
    stream = mongo.streams.fatal.watch()
    through.inject_next(CHANGE_STREAM_FATAL)
    assert mongo.streams.fatal.find_one() == {"_id": "seen"}  # not a change stream getMore: left alone
    assert through.pending == 1
    with pytest.raises(OperationFailure) as raised:
        next_change(stream)
    assert raised.value.code == 280
    assert (raised.value.details or {}).get("errorLabels") == ["NonResumableChangeStreamError"]
    assert [(i.kind, i.command, i.code) for i in through.injected] == [(CHANGE_STREAM_FATAL, "getMore", 280)]


@pytest.mark.parametrize("park", [True, False])
def test_cursors_outlive_a_reset_of_their_connection(proxy: Proxy, client: Client, direct: MongoClient[Any],
                                                     park: bool) -> None:
    """The trap: one reset clears pymongo's pool, closing the connections its cursors were opened on.
    Parked, their server side stays open and both a copy read and a change stream carry on through new
    connections; unparked (a naive proxy), nx-27017 ends both silently: 5 of 50 documents, a dead stream."""
    name = f"parked{park}"
    direct.trap[name].insert_many([{"_id": f"d{i:02d}"} for i in range(50)])
    through = proxy(park=park)
    mongo = client(through, retryReads=True)
    stream = mongo.trap[f"{name}_stream"].watch()
    cursor = mongo.trap[name].find(batch_size=5)
    first = [next(cursor) for _ in range(5)]
    through.inject_next(RESET_BEFORE_REPLY, on=COPY_READ)
    assert mongo.trap.other.find_one() is None  # reset, then retried by pymongo on a fresh pool
    assert through.count(RESET_BEFORE_REPLY) == 1
    direct.trap[f"{name}_stream"].insert_one({"_id": "after"})
    change = next_change(stream, timeout=2.0)
    documents = first + list(cursor)
    if park:
        assert len(documents) == 50 and change["documentKey"] == {"_id": "after"}
        assert through.parked >= 1
    else:
        assert len(documents) == 5 and change is None and not stream.alive


def run_with_seed(proxy: Proxy, client: Client, seed: int) -> list[tuple[Any, ...]]:
    through = proxy(seed=seed, rate=0.3, kinds=(ERROR, RESET_BEFORE_FORWARD), codes=(6, 89))
    collection = client(through).seeded[f"s{seed}"]
    for number in range(16):
        try:
            if number % 2:
                collection.insert_one({"n": number})
            else:
                collection.find_one({"n": number - 1})
        except PyMongoError:
            pass
    return [(i.seq, i.kind, i.command, i.code) for i in through.injected]


def test_the_same_seed_injects_the_same_faults(proxy: Proxy, client: Client) -> None:
    """The draws depend on the seed and the eligible commands only: the reconnections and handshakes a
    reset causes (which interleave with the monitor's) do not move them."""
    first = run_with_seed(proxy, client, 13)  # seeds whose draws hold one reset each: 0.5 s a reset, see above
    assert first == run_with_seed(proxy, client, 13)
    assert {kind for _, kind, _, _ in first} == {ERROR, RESET_BEFORE_FORWARD}
    assert run_with_seed(proxy, client, 3) != first


def test_the_handshake_and_housekeeping_are_never_faulted_unless_named(proxy: Proxy, client: Client) -> None:
    through = proxy(rate=1.0, kinds=(RESET_BEFORE_FORWARD, RESET_MID_REPLY, ERROR))
    mongo = client(through)
    assert mongo.admin.command("ping")["ok"] == 1  # every connection's hello, then ping
    assert mongo.admin.command("hello")["isWritablePrimary"] is True
    mongo.admin.command("buildInfo")
    with pytest.raises(PyMongoError):
        mongo.hand.c.find_one()
    assert mongo.admin.command("ping")["ok"] == 1  # after a fault: a new connection, its handshake untouched
    mongo.close()  # endSessions
    assert through.injected and not {i.command for i in through.injected} & PROTECTED

    named = proxy()
    named.inject_next(ERROR, on="ping", code=91)
    with pytest.raises(NotPrimaryError):
        client(named).admin.command("ping")
    assert [(i.command, i.seq) for i in named.injected] == [("ping", None)]  # outside the random stream


def test_targets_limit_faults_to_their_commands(proxy: Proxy, client: Client, direct: MongoClient[Any]) -> None:
    direct.targets.c.insert_one({"_id": "x"})
    inserts = proxy(rate=1.0, kinds=(ERROR,), on=INSERT, codes=(6,))
    collection = client(inserts).targets.c
    assert collection.find_one() == {"_id": "x"}
    collection.update_one({"_id": "x"}, {"$set": {"seen": True}})
    with pytest.raises(OperationFailure):
        collection.insert_one({"_id": "y"})

    writes = proxy(rate=1.0, kinds=(ERROR,), on=UPDATE_DELETE, codes=(6,))
    collection = client(writes).targets.c
    collection.insert_one({"_id": "z"})
    for write in (lambda: collection.update_one({"_id": "x"}, {"$set": {"a": 1}}),
                  lambda: collection.delete_one({"_id": "x"})):
        with pytest.raises(OperationFailure):
            write()
    assert [i.command for i in inserts.injected] == ["insert"]
    assert [i.command for i in writes.injected] == ["update", "delete"]
    with pytest.raises(ValueError):
        proxy(on="copy_reads")  # a mistyped target is refused, not taken for a command name


def test_paused_or_disabled_the_proxy_injects_nothing(proxy: Proxy, client: Client) -> None:
    through = proxy(rate=1.0, kinds=(ERROR,), codes=(6,))
    collection = client(through).paused.c
    through.inject_next(ERROR, on=INSERT, code=89)
    with through.paused():
        collection.insert_one({"_id": 1})
        assert collection.find_one() == {"_id": 1}
    assert through.injected == [] and through.pending == 1  # the forced fault waits
    through.enabled = False
    collection.insert_one({"_id": 2})
    through.enabled = True
    with pytest.raises(OperationFailure) as raised:
        collection.insert_one({"_id": 3})
    assert raised.value.code == 89 and through.pending == 0


def test_every_injection_is_logged_with_the_seed(proxy: Proxy, client: Client,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tests.fault_proxy")
    through = proxy(seed=1234)
    through.inject_next(ERROR, on=COPY_READ, code=6)
    with pytest.raises(OperationFailure):
        client(through).logged.c.find_one()
    lines = [r.getMessage() for r in caplog.records if r.name == "tests.fault_proxy"]
    assert any("seed=1234" in line for line in lines)  # the proxy's start
    assert any("seed 1234" in line and "error on find" in line and "code 6" in line for line in lines)
    assert through.wait_for(ERROR, timeout=0.1)


def test_error_labels_follow_the_servers_rules() -> None:
    """The label rules of a MongoDB 4.4+ mongod: by the command, not by the code alone."""
    lsid = {"id": bson.Binary(b"0" * 16, 4)}
    retryable_insert = {"insert": "c", "lsid": lsid, "txnNumber": 1}
    assert server_labels(retryable_insert, 10107, False) == ("RetryableWriteError", "NoWritesPerformed")
    assert server_labels({"insert": "c", "lsid": lsid}, 10107, False) == ()  # not a retryable write
    assert server_labels({**retryable_insert, "autocommit": False}, 89, False) == ("TransientTransactionError",)
    assert server_labels({"commitTransaction": 1, "txnNumber": 1, "autocommit": False}, 91, False) == (
        "RetryableWriteError", "NoWritesPerformed")
    assert server_labels({"getMore": 5, "collection": "c"}, 6, True) == ("ResumableChangeStreamError",)
    assert server_labels({"aggregate": "c", "pipeline": [{"$changeStream": {}}]}, 11602, True) == (
        "ResumableChangeStreamError",)
    assert server_labels({"getMore": 5, "collection": "c"}, 6, False) == ()  # a copy read's cursor
    assert server_labels({"getMore": 5, "collection": "c"}, 280, True) == ("NonResumableChangeStreamError",)
    assert server_labels({"find": "c"}, 13, False) == ()  # Unauthorized: not retriable


def test_exhaust_cursors_and_compression_pass_through(proxy: Proxy, client: Client,
                                                    direct: MongoClient[Any]) -> None:
    """An exhaust cursor asks for replies with moreToCome (nx-27017 sends plain ones, which pymongo
    accepts); `compressors=zlib` is never agreed (nx-27017 offers no compression in hello). Unacknowledged
    (w=0) writes are not tried: nx-27017 answers a moreToCome request anyway and, measured, the writes
    do not show up (the proxy forwards such a request without waiting for a reply, as the protocol says)."""
    direct.passing.c.insert_many([{"_id": number} for number in range(3)])
    through = proxy(rate=1.0, kinds=(ERROR,), on="count")  # armed, but on a command these never send
    mongo = client(through, compressors="zlib")
    assert list(mongo.passing.c.find(batch_size=1, cursor_type=CursorType.EXHAUST)) == [{"_id": 0}, {"_id": 1},
                                                                                         {"_id": 2}]
    assert through.injected == []


def test_a_logged_seed_can_be_replayed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULT_PROXY_SEED", "4242")
    assert seed_from_env(default=1) == 4242
    monkeypatch.delenv("FAULT_PROXY_SEED")
    assert seed_from_env(default=1) == 1
