"""Probing a monitored host: what a deployment is (version, FCV, replica set, TLS, sizes) or why it cannot be read.

The source side reads this itself, with the credentials registered for the host, the way a
monitoring agent would; the answers are what the inventory shows a linked target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from livemigrate.engine.errors import redact
from livemigrate.engine.versions import release_of

if TYPE_CHECKING:
    from pymongo import MongoClient

PROBE_TIMEOUT_MS = 3000
@dataclass(frozen=True)
class HostAddress:
    hostname: str
    port: int
    username: str | None
    password: str | None
    auth_mechanism: str
    ssl_enabled: bool

    def uri(self, *, direct: bool = True) -> str:
        """A connection string for this host; it carries the password, so it is never logged or stored."""
        credentials = ""
        if self.username and self.auth_mechanism != "NONE":
            credentials = f"{quote_plus(self.username)}:{quote_plus(self.password or '')}@"
        options = ["directConnection=true"] if direct else []
        if self.ssl_enabled:
            options.append("tls=true")
        if self.auth_mechanism in ("SCRAM-SHA-1", "SCRAM-SHA-256") and credentials:
            options.append(f"authMechanism={self.auth_mechanism}")
        return f"mongodb://{credentials}{self.hostname}:{self.port}/?{'&'.join(options)}"


@dataclass(frozen=True)
class ProbeResult:
    reachable: bool
    error: str | None = None
    replica_set_name: str | None = None
    version: str | None = None
    feature_compatibility_version: str | None = None
    sharded: bool = False
    data_size_bytes: int | None = None
    oplog_size_mb: float | None = None


def _fcv(client: MongoClient[Any]) -> str | None:
    from pymongo.errors import PyMongoError

    try:
        answer = client.admin.command({"getParameter": 1, "featureCompatibilityVersion": 1})
    except PyMongoError:
        return None
    value = answer.get("featureCompatibilityVersion")
    return str(value.get("version")) if isinstance(value, dict) and value.get("version") else None


def _oplog_size_mb(client: MongoClient[Any]) -> float | None:
    from pymongo.errors import PyMongoError

    try:
        stats = client.local.command("collStats", "oplog.rs")
    except PyMongoError:
        return None  # a standalone, or no right to read it
    size = stats.get("maxSize")
    return round(float(size) / (1024 * 1024), 1) if size else None


def probe(address: HostAddress) -> ProbeResult:
    # pymongo is imported where a host is probed, not by every server start (a tenth of a second).
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from livemigrate.engine.mongo.connect import describe_failure, hosts_of

    uri = address.uri()
    try:
        client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=PROBE_TIMEOUT_MS,
                                               connectTimeoutMS=PROBE_TIMEOUT_MS, appname="livemigrate-monitor")
        with client:
            hello = client.admin.command("hello")
            build = client.admin.command("buildInfo")
            databases = client.admin.command("listDatabases")
            return ProbeResult(
                reachable=True,
                replica_set_name=hello.get("setName"),
                version=build.get("version") or release_of(int(hello.get("maxWireVersion", 0))),
                feature_compatibility_version=_fcv(client),
                sharded=hello.get("msg") == "isdbgrid",
                data_size_bytes=int(databases.get("totalSize") or 0),
                oplog_size_mb=_oplog_size_mb(client),
            )
    except (PyMongoError, KeyError, ValueError, TypeError) as error:
        return ProbeResult(reachable=False, error=redact(describe_failure(error, hosts_of(uri)), uri)[:500])
