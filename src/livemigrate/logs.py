"""Log lines as text (the default, for a person) or as JSON (`--log-format json`, for a log shipper).

Every line written while a request is served carries what identifies it — the request id (also in the
answer's `X-Request-Id`), and the org, project and migration ids of its path — taken from the request
being served (`http/middleware.py` keeps it in a context variable, which worker threads inherit).
Nothing else is added: secrets never reach a log message in the first place (`test_secrets_in_logs.py`).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from livemigrate.http.middleware import current_request

LogFormat = Literal["text", "json"]

# Path parameters worth a field of their own, under the names a reader of the API knows.
_IDS = {"org_id": "orgId", "group_id": "groupId", "migration_id": "migrationId"}


class RequestFields(logging.Filter):
    """Adds `requestId` and the path's ids to each record made while a request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = current_request()
        if scope is not None:
            record.requestId = scope.get("livemigrate.request_id")
            for parameter, field in _IDS.items():
                value = scope.get("path_params", {}).get(parameter)
                if value is not None:
                    setattr(record, field, value)
        return True


def configure(level: str, log_format: LogFormat) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestFields())
    if log_format == "json":
        handler.setFormatter(JsonFormatter("{asctime}{levelname}{name}{message}", style="{",
                                           rename_fields={"asctime": "time", "levelname": "level", "name": "logger"}))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    quiet_libraries()


def quiet_libraries() -> None:
    """Keeps the libraries' own debug lines out of a DEBUG log: httpx and httpcore write one per link
    push or socket event, and pymongo seven JSON lines per command (its server selection, connection
    checkout and command events), which made most of a debug log and most of the CPU it cost."""
    for noisy in ("httpx", "httpcore", "pymongo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
