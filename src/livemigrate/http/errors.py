"""The error catalogue and the one exception every layer raises to answer a request with an error.

Errors are values with a code and a sentence for a person; they are raised where they are known
and rendered in exactly one place (`responses.error_response`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from http import HTTPStatus


class ErrorCode(str, Enum):
    """Every errorCode the APIs answer with, and its HTTP status."""

    def __new__(cls, value: str, status: int) -> ErrorCode:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        return member

    status: int

    INVALID_JSON = ("INVALID_JSON", 400)
    MISSING_ATTRIBUTE = ("MISSING_ATTRIBUTE", 400)
    INVALID_ATTRIBUTE = ("INVALID_ATTRIBUTE", 400)
    ATTRIBUTE_READ_ONLY = ("ATTRIBUTE_READ_ONLY", 400)
    INVALID_ENUM_VALUE = ("INVALID_ENUM_VALUE", 400)
    INVALID_QUERY_PARAMETER = ("INVALID_QUERY_PARAMETER", 400)
    INVALID_ORG_ID = ("INVALID_ORG_ID", 400)
    INVALID_GROUP_ID = ("INVALID_GROUP_ID", 400)
    INVALID_API_KEY_ID = ("INVALID_API_KEY_ID", 400)
    INVALID_IP_ADDRESS_OR_CIDR_NOTATION = ("INVALID_IP_ADDRESS_OR_CIDR_NOTATION", 400)
    INVALID_LINK_TOKEN = ("INVALID_LINK_TOKEN", 400)
    INVALID_HOST_ID = ("INVALID_HOST_ID", 400)
    INVALID_CONNECTION_STRING = ("INVALID_CONNECTION_STRING", 400)
    LIVE_MIGRATION_INVALID_REQUEST = ("LIVE_MIGRATION_INVALID_REQUEST", 400)
    CANNOT_DELETE_ORG_WITH_LINK_OR_PROJECTS = ("CANNOT_DELETE_ORG_WITH_LINK_OR_PROJECTS", 409)
    USER_UNAUTHORIZED = ("USER_UNAUTHORIZED", 401)
    IP_ADDRESS_NOT_ON_ACCESS_LIST = ("IP_ADDRESS_NOT_ON_ACCESS_LIST", 403)
    ORG_NOT_FOUND = ("ORG_NOT_FOUND", 404)
    GROUP_NOT_FOUND = ("GROUP_NOT_FOUND", 404)
    API_KEY_NOT_FOUND = ("API_KEY_NOT_FOUND", 404)
    ACCESS_LIST_ENTRY_NOT_FOUND = ("ACCESS_LIST_ENTRY_NOT_FOUND", 404)
    RESOURCE_NOT_FOUND = ("RESOURCE_NOT_FOUND", 404)
    ORG_LINK_NOT_FOUND = ("ORG_LINK_NOT_FOUND", 404)
    HOST_NOT_FOUND = ("HOST_NOT_FOUND", 404)
    LIVE_MIGRATION_NOT_FOUND = ("LIVE_MIGRATION_NOT_FOUND", 404)
    VALIDATION_NOT_FOUND = ("VALIDATION_NOT_FOUND", 404)
    METHOD_NOT_ALLOWED = ("METHOD_NOT_ALLOWED", 405)
    DUPLICATE_GROUP_NAME = ("DUPLICATE_GROUP_NAME", 409)
    DUPLICATE_HOST = ("DUPLICATE_HOST", 409)
    DUPLICATE_CLUSTER_NAME = ("DUPLICATE_CLUSTER_NAME", 409)
    LIVE_MIGRATION_NOT_READY_FOR_CUTOVER = ("LIVE_MIGRATION_NOT_READY_FOR_CUTOVER", 409)
    LIVE_MIGRATION_ALREADY_FINISHED = ("LIVE_MIGRATION_ALREADY_FINISHED", 409)
    LIVE_MIGRATION_DESTINATION_IN_USE = ("LIVE_MIGRATION_DESTINATION_IN_USE", 409)
    LIVE_MIGRATION_NOT_REVERSIBLE = ("LIVE_MIGRATION_NOT_REVERSIBLE", 409)
    CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT = ("CANNOT_DELETE_ORG_LINK_WITH_RUNNING_LIVE_EXPORT", 409)
    CANNOT_RELINK_ORG_WITH_RUNNING_LIVE_EXPORT = ("CANNOT_RELINK_ORG_WITH_RUNNING_LIVE_EXPORT", 409)
    TOO_LARGE = ("TOO_LARGE", 413)
    UNSUPPORTED_MEDIA_TYPE = ("UNSUPPORTED_MEDIA_TYPE", 415)
    RATE_LIMITED = ("RATE_LIMITED", 429)
    UNEXPECTED_ERROR = ("UNEXPECTED_ERROR", 500)
    LINK_TARGET_UNAVAILABLE = ("LINK_TARGET_UNAVAILABLE", 502)
    SERVICE_UNAVAILABLE = ("SERVICE_UNAVAILABLE", 503)


class ApiError(Exception):
    """Answer the current request with `code`, a sentence for a person, and its parameters."""

    def __init__(self, code: ErrorCode, detail: str, parameters: Sequence[object] = (), **headers: str) -> None:
        super().__init__(f"{code.value}: {detail}")
        self.code = code
        self.detail = detail
        self.parameters = list(parameters)
        self.headers = {name.replace("_", "-"): value for name, value in headers.items()}

    @property
    def status(self) -> int:
        return self.code.status

    def body(self) -> dict[str, object]:
        return {
            "detail": self.detail,
            "error": self.status,
            "errorCode": self.code.value,
            "parameters": self.parameters,
            "reason": HTTPStatus(self.status).phrase,
        }
