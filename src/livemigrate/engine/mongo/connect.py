"""Connecting to the source and the target, and saying plainly why it failed."""

from __future__ import annotations

import re
from typing import Any

from pymongo import MongoClient
from pymongo.errors import ConfigurationError, ConnectionFailure, InvalidURI, OperationFailure, PyMongoError

from livemigrate.engine.errors import EngineError, EngineErrorCode, redact, redact_uri
from livemigrate.engine.mongo.faults import DRIVER_DETAIL, Endpoint, FaultPolicy, RetryCounts

_AUTH_FAILED_CODES = {18, 11, 13}


def connect(uri: str, role: str, timeout_ms: int = 5000, *, fault_limit_seconds: float | None = None,
            socket_timeout_ms: int | None = None, counts: RetryCounts | None = None) -> Endpoint:
    """Open a client on `uri` and prove it works (ping, authentication) before anything is written.

    The client knows its side and how long a fault there may be ridden out (`mongo/faults.py`):
    `fault_limit_seconds`, and `counts`, where the retries of a migration's clients are counted.
    `socket_timeout_ms` ends a round trip whose reply never comes (the driver sets none: it would
    wait for ever on a connection that stays open); a timeout in the URI wins."""
    unreachable = EngineErrorCode.SOURCE_UNREACHABLE if role == "source" else EngineErrorCode.TARGET_UNREACHABLE
    auth_failed = EngineErrorCode.SOURCE_AUTH_FAILED if role == "source" else EngineErrorCode.TARGET_AUTH_FAILED
    lowered = uri.lower()
    timeouts: dict[str, Any] = {name: timeout_ms for name in ("serverSelectionTimeoutMS", "connectTimeoutMS")
                if name.lower() not in lowered}  # a timeout set in the URI wins
    if socket_timeout_ms is not None and "sockettimeoutms" not in lowered:
        timeouts["socketTimeoutMS"] = socket_timeout_ms
    try:
        client = Endpoint(uri, appname="livemigrate", **timeouts)
        client.open_patient_with(uri, {"appname": "livemigrate", **timeouts})
    except (InvalidURI, ConfigurationError, ValueError) as error:
        raise EngineError(EngineErrorCode.INVALID_URI,
                          f"the {role} URI {redact_uri(uri)} is not valid: {redact(str(error), uri)}") from None
    except OSError as error:  # a file the URI names (tlsCAFile, tlsCertificateKeyFile) cannot be read here
        raise EngineError(EngineErrorCode.INVALID_URI,
                          f"the {role} URI {redact_uri(uri)} names a file this machine cannot read: "
                          f"{redact(str(error), uri)}") from None
    try:
        client.admin.command("ping")
    except OperationFailure as error:
        client.close()
        if error.code in _AUTH_FAILED_CODES:
            raise EngineError(auth_failed, f"the {role} at {redact_uri(uri)} refused the credentials: "
                                           f"{redact(str(error.details.get('errmsg', error)) if error.details else str(error), uri)}") from None
        raise EngineError(unreachable, f"the {role} at {redact_uri(uri)} refused the connection check: "
                                       f"{redact(str(error), uri)}") from None
    except ConnectionFailure as error:
        client.close()
        raise EngineError(unreachable, f"cannot reach the {role}: "
                                       f"{redact(describe_failure(error, hosts_of(uri)), uri)}") from None
    except (PyMongoError, KeyError, ValueError, TypeError) as error:
        # A server that breaks off the authentication handshake surfaces as a driver-internal error.
        client.close()
        if _has_credentials(uri):
            raise EngineError(auth_failed, f"authentication with the {role} at {redact_uri(uri)} failed "
                                           f"({type(error).__name__}: {redact(str(error), uri)})") from None
        raise EngineError(unreachable, f"the {role} at {redact_uri(uri)} answered in a way that cannot be used: "
                                       f"{type(error).__name__}: {redact(str(error), uri)}") from None
    defaults = FaultPolicy()
    client.fault_policy = FaultPolicy(
        side="source" if role == "source" else "destination",
        limit_seconds=fault_limit_seconds if fault_limit_seconds is not None else defaults.limit_seconds,
        counts=counts if counts is not None else RetryCounts())
    client.address_text = hosts_of(redact_uri(uri))
    return client


# What a driver's failure to connect means, in the words a person acts on: (what its message says, the
# cause, what to check). Tried in order; the first that matches names the cause.
_CAUSES = (
    (("authentication failed", "auth failed", "bad auth"), "authentication failed",
     "check the user, its password and the authentication mechanism"),
    (("name or service not known", "nodename nor servname", "no address associated", "getaddrinfo failed",
      "temporary failure in name resolution"), "the host name does not resolve", "check its spelling and DNS"),
    (("connection refused",), "connection refused", "check that mongod (or mongos) runs and listens on that address "
                                                   "and port"),
    (("ssl", "certificate", "tls"), "the TLS handshake failed", "check TLS on both ends and the CA file"),
    (("timed out", "timeout"), "no answer in time", "check that the host is reachable from here (address, firewall, "
                                                    "network)"),
)


def describe_failure(error: BaseException, address: str) -> str:
    """A driver error as one sentence: the host, the cause and what to check — never the driver's topology
    dump. `address`: the host the caller was reaching (the message names another when it says more)."""
    text = str(error)
    lowered = text.lower()
    if isinstance(error, OperationFailure) and error.code in _AUTH_FAILED_CODES:
        lowered = "authentication failed"
    named = re.match(r"([\w.\-\[\]:]+:\d+): ", text)
    where = named.group(1) if named else address
    for signs, cause, check in _CAUSES:
        if any(sign in lowered for sign in signs):
            return f"{where}: {cause}; {check}"
    detail = strip_driver_detail(text).strip()
    return f"{where}: {type(error).__name__}: {detail[:300]}"


def strip_driver_detail(text: str) -> str:
    """A driver message without its topology dump and its list of configured timeouts."""
    return DRIVER_DETAIL.sub("", text)


def hosts_of(uri: str) -> str:
    """The hosts a connection string names, as `host:port[,host:port…]`, without its credentials."""
    return uri.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]


def _has_credentials(uri: str) -> bool:
    return "@" in uri.split("://", 1)[-1].split("/", 1)[0]


def wire_version(client: MongoClient[Any]) -> int:
    return int(client.admin.command("hello").get("maxWireVersion", 0))
