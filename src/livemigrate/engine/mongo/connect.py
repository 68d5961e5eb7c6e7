"""Connecting to the source and the target, and saying plainly why it failed."""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.errors import ConfigurationError, ConnectionFailure, InvalidURI, OperationFailure, PyMongoError

from livemigrate.engine.errors import EngineError, EngineErrorCode, redact, redact_uri

_AUTH_FAILED_CODES = {18, 11, 13}


def connect(uri: str, role: str, timeout_ms: int = 5000) -> MongoClient[Any]:
    """Open a client on `uri` and prove it works (ping, authentication) before anything is written."""
    unreachable = EngineErrorCode.SOURCE_UNREACHABLE if role == "source" else EngineErrorCode.TARGET_UNREACHABLE
    auth_failed = EngineErrorCode.SOURCE_AUTH_FAILED if role == "source" else EngineErrorCode.TARGET_AUTH_FAILED
    lowered = uri.lower()
    timeouts: dict[str, Any] = {name: timeout_ms for name in ("serverSelectionTimeoutMS", "connectTimeoutMS")
                if name.lower() not in lowered}  # a timeout set in the URI wins
    try:
        client: MongoClient[Any] = MongoClient(uri, appname="livemigrate", **timeouts)
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
        raise EngineError(unreachable, f"cannot reach the {role} at {redact_uri(uri)}: {redact(str(error), uri)}") from None
    except (PyMongoError, KeyError, ValueError, TypeError) as error:
        # A server that breaks off the authentication handshake surfaces as a driver-internal error.
        client.close()
        if _has_credentials(uri):
            raise EngineError(auth_failed, f"authentication with the {role} at {redact_uri(uri)} failed "
                                           f"({type(error).__name__}: {redact(str(error), uri)})") from None
        raise EngineError(unreachable, f"the {role} at {redact_uri(uri)} answered in a way that cannot be used: "
                                       f"{type(error).__name__}: {redact(str(error), uri)}") from None
    return client


def _has_credentials(uri: str) -> bool:
    return "@" in uri.split("://", 1)[-1].split("/", 1)[0]


def wire_version(client: MongoClient[Any]) -> int:
    return int(client.admin.command("hello").get("maxWireVersion", 0))
