"""Documents of a mebibyte and more: a copy's batches are bounded in bytes as well as in documents, and
such documents are copied and verified like any other."""

from __future__ import annotations

import subprocess
from pathlib import Path

import bson
from bson.raw_bson import RawBSONDocument

from livemigrate.engine.mongo.reader import BATCH_BYTES, in_batches
from tests.nx import NxServer
from tests.support import LIVEMIGRATE

MEBIBYTE = 1024**2


def _document(index: int, size: int) -> RawBSONDocument:
    return RawBSONDocument(bson.encode({"_id": index, "pad": "x" * size}))


def test_a_batch_ends_at_its_byte_limit_before_its_count() -> None:
    # A thousand documents of up to 16 MiB each would be 16 GiB in one batch, three times over with
    # the read-ahead: a batch ends at BATCH_BYTES first.
    large = [_document(index, MEBIBYTE) for index in range(40)]
    sizes = [len(batch) for batch in in_batches(large, 1000)]
    assert sizes == [16, 16, 8], sizes
    assert all(sum(len(document.raw) for document in batch[:-1]) < BATCH_BYTES
               for batch in in_batches(large, 1000))
    # Small documents still go by count, and nothing is lost or repeated either way.
    small = [_document(index, 10) for index in range(2500)]
    assert [len(batch) for batch in in_batches(small, 1000)] == [1000, 1000, 500]
    assert [document["_id"] for batch in in_batches(large, 1000) for document in batch] == list(range(40))


def test_documents_of_a_mebibyte_are_copied_and_verified_equal(servers: tuple[NxServer, NxServer],
                                                              tmp_path: Path) -> None:
    source, target = servers
    with source.client() as client:
        client.media.blobs.watch().close()  # nx-27017 records changes from a collection's first watch
        client.media.blobs.insert_many([{"_id": index, "pad": "x" * MEBIBYTE} for index in range(40)])
    migrated = subprocess.run([LIVEMIGRATE, "migrate", source.uri, target.uri, "--state-dir", str(tmp_path / "state"),
                               "--capture", "collection", "--until-caught-up"],
                              capture_output=True, text=True, timeout=300)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "copy done: 40 documents" in migrated.stderr, migrated.stderr
    verified = subprocess.run([LIVEMIGRATE, "verify", source.uri, target.uri], capture_output=True, text=True,
                              timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    with target.client() as client:
        assert client.media.blobs.count_documents({}) == 40
