"""Errors a person can act on: one code, one sentence, and never a password from a connection string."""

from __future__ import annotations

import re
from enum import Enum


class EngineErrorCode(str, Enum):
    SOURCE_UNREACHABLE = "SOURCE_UNREACHABLE"
    TARGET_UNREACHABLE = "TARGET_UNREACHABLE"
    SOURCE_AUTH_FAILED = "SOURCE_AUTH_FAILED"
    TARGET_AUTH_FAILED = "TARGET_AUTH_FAILED"
    TARGET_NOT_EMPTY = "TARGET_NOT_EMPTY"
    RESUME_TOKEN_LOST = "RESUME_TOKEN_LOST"
    STATE_MISMATCH = "STATE_MISMATCH"
    INVALID_URI = "INVALID_URI"
    SPOOL_LIMIT_EXCEEDED = "SPOOL_LIMIT_EXCEEDED"
    COPY_WORKER_LOST = "COPY_WORKER_LOST"
    DESTINATION_IN_USE = "DESTINATION_IN_USE"  # another migration writes the destination now
    DESTINATION_TAKEN_OVER = "DESTINATION_TAKEN_OVER"  # another migration wrote it since this one last ran
    TARGET_OUT_OF_SPACE = "TARGET_OUT_OF_SPACE"  # the destination's disk is full
    SHARDING_REFUSED = "SHARDING_REFUSED"  # the sharding asked for cannot be done on these deployments
    SOURCE_BALANCER_RUNNING = "SOURCE_BALANCER_RUNNING"  # a sharded source's balancer runs during a copy
    STATE_DISK_FULL = "STATE_DISK_FULL"  # the migration host's state directory cannot be written: its disk is full


class EngineError(Exception):
    def __init__(self, code: EngineErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.value}: {self.message}"

    def __reduce__(self) -> tuple[type[EngineError], tuple[EngineErrorCode, str]]:
        """Pickled whole, code included: a copy worker's error reaches its coordinator this way."""
        return (EngineError, (self.code, self.message))


_CREDENTIALS_IN_URI = re.compile(r"(mongodb(?:\+srv)?://)([^@/\s]+)@")


def redact_uri(uri: str) -> str:
    """A URI fit for logs and messages: the user is kept, the password is not."""
    return _CREDENTIALS_IN_URI.sub(lambda match: f"{match.group(1)}{match.group(2).split(':', 1)[0]}:***@", uri)


def redact(text: str, *uris: str) -> str:
    """Remove every URI's password from a driver message that may quote it."""
    for uri in uris:
        match = _CREDENTIALS_IN_URI.search(uri)
        if match and ":" in match.group(2):
            password = match.group(2).split(":", 1)[1]
            if password:
                text = text.replace(password, "***")
    return _CREDENTIALS_IN_URI.sub(lambda m: f"{m.group(1)}{m.group(2).split(':', 1)[0]}:***@", text)
