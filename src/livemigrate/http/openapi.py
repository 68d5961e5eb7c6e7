"""What `/openapi.json` says beyond the routes' signatures: the error answers, the ids' shapes, the
bodies parsed by hand — so that a client generated from it, or a fuzzer reading it, is told the truth.

Routes declare their error answers with `errors(...)`, by code: the code's status is the response,
the codes are its description, and the body is the catalogue's one error shape. `describe()` then
finishes the document FastAPI builds: it drops the 422 FastAPI declares for its own validation
(every validation failure here answers 400 in the error shape) and moves the nested models of
hand-parsed bodies into `components`, where their references point.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Annotated, Any

from fastapi import FastAPI, Path
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from livemigrate.http.access_list import IP_OR_CIDR_PATTERN
from livemigrate.http.errors import ErrorCode
from livemigrate.ids import OBJECT_ID_PATTERN

OBJECT_ID = {"type": "string", "pattern": OBJECT_ID_PATTERN.pattern}


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    detail: str
    error: int
    errorCode: str
    parameters: list[Any]
    reason: str


def _object_id(what: str) -> Any:
    # Declared in the document, checked by the services: an id of the wrong form must answer its own
    # code (INVALID_ORG_ID …) after authentication, not FastAPI's generic validation error before it.
    return Path(description=f"The {what}'s id: 24 hexadecimal digits.",
                json_schema_extra={"pattern": OBJECT_ID_PATTERN.pattern})


OrgId = Annotated[str, _object_id("organization")]
SourceOrgId = Annotated[str, _object_id("source organization")]
GroupId = Annotated[str, _object_id("project")]
KeyId = Annotated[str, _object_id("API key")]
HostId = Annotated[str, _object_id("host")]
MigrationId = Annotated[str, _object_id("live migration")]
ValidationId = Annotated[str, _object_id("validation")]
JobId = Annotated[str, _object_id("job (a live migration's, or a validation's)")]
# Checked by the service like the ids (INVALID_IP_ADDRESS_OR_CIDR_NOTATION, after authentication), against
# the very pattern declared here.
IpOrCidr = Annotated[str, Path(description="An access list entry: an IP address or a CIDR block (a `/` in it "
                                           "may be sent as `%2F`).",
                               json_schema_extra={"pattern": IP_OR_CIDR_PATTERN})]

# What any authenticated operation may answer, whatever it does.
CALLER = (ErrorCode.INVALID_QUERY_PARAMETER, ErrorCode.USER_UNAUTHORIZED, ErrorCode.IP_ADDRESS_NOT_ON_ACCESS_LIST)
ORG = (ErrorCode.INVALID_ORG_ID, ErrorCode.ORG_NOT_FOUND)
PROJECT = (ErrorCode.INVALID_GROUP_ID, ErrorCode.GROUP_NOT_FOUND)
BODY = (ErrorCode.INVALID_JSON, ErrorCode.MISSING_ATTRIBUTE, ErrorCode.INVALID_ATTRIBUTE, ErrorCode.INVALID_ENUM_VALUE,
        ErrorCode.TOO_LARGE, ErrorCode.UNSUPPORTED_MEDIA_TYPE)


def errors(*groups: Iterable[ErrorCode] | ErrorCode) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: one response per status among `groups` and `CALLER`, naming its codes."""
    codes: list[ErrorCode] = list(CALLER)
    for group in groups:
        for code in [group] if isinstance(group, ErrorCode) else group:
            if code not in codes:
                codes.append(code)
    by_status: dict[int, list[str]] = {}
    for code in codes:
        by_status.setdefault(code.status, []).append(code.value)
    return {status: {"model": ErrorBody,
                     "description": f"{HTTPStatus(status).phrase}: {', '.join(names)}."}
            for status, names in sorted(by_status.items())}


def documented_methods(document: dict[str, Any], path: str) -> list[str]:
    """The methods the document declares for `path`, its parameters matching their declared patterns:
    what a 405 names in `Allow` (GET …/liveMigrations/{migrationId} is not served at …/validate)."""
    methods: set[str] = set()
    for template, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            if method.upper() not in methods and _matches(template, operation.get("parameters", []), path):
                methods.add(method.upper())
    return sorted(methods)


def _matches(template: str, parameters: list[dict[str, Any]], path: str) -> bool:
    patterns = {parameter["name"]: parameter.get("schema", {}).get("pattern")
                for parameter in parameters if parameter.get("in") == "path"}
    expected, given = template.split("/"), path.split("/")
    if len(given) > len(expected) and expected[-1].startswith("{"):
        # A parameter that ends the template may hold slashes (an access list's CIDR block).
        given = [*given[:len(expected) - 1], "/".join(given[len(expected) - 1:])]
    if len(given) != len(expected):
        return False
    for segment, value in zip(expected, given, strict=True):
        if segment.startswith("{") and segment.endswith("}"):
            pattern = patterns.get(segment[1:-1])
            if not value or (pattern is not None and re.search(pattern, value) is None):
                return False
        elif segment != value:
            return False
    return True


def describe(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The application's `openapi` function: FastAPI's document, finished as the module says."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version, description=app.description,
                                   routes=app.routes)
            _finish(document)
            app.openapi_schema = document
        return app.openapi_schema

    return openapi


def _finish(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            for media in operation.get("requestBody", {}).get("content", {}).values():
                _hoist_definitions(media.get("schema", {}), schemas)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)


def _hoist_definitions(schema: Any, schemas: dict[str, Any]) -> None:
    """Nested models of a hand-parsed body (`bodies.openapi_body`) refer to `#/components/schemas/…`."""
    if isinstance(schema, dict):
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        for value in schema.values():
            _hoist_definitions(value, schemas)
    elif isinstance(schema, list):
        for item in schema:
            _hoist_definitions(item, schemas)
