"""The one exception the client raises for an API error answer, carrying the documented fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine's commands load this module too, and spare httpx's import
    import httpx


class ApiCallError(Exception):
    def __init__(self, status: int, error_code: str, detail: str, parameters: list[Any] | None = None) -> None:
        super().__init__(f"{status} {error_code}: {detail}")
        self.status = status
        self.error_code = error_code
        self.detail = detail
        self.parameters = parameters or []

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiCallError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        return cls(
            response.status_code,
            str(body.get("errorCode") or "HTTP_ERROR"),
            str(body.get("detail") or response.reason_phrase or "no detail"),
            body.get("parameters") if isinstance(body.get("parameters"), list) else [],
        )
