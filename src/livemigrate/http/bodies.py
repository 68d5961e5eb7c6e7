"""Strict request bodies: JSON only, objects only, unknown and read-only fields refused.

Pydantic validates; this module turns its findings into the catalogue's codes so a client learns
which attribute is wrong and why, and nothing is written before the body is known to be good.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, StrictInt, ValidationError
from starlette.requests import Request

from livemigrate.http.errors import ApiError, ErrorCode

ModelT = TypeVar("ModelT", bound=BaseModel)


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]
"""An integer as JSON Schema's `integer` means it: 305.0 is 305 (JSON has one number type, and the
document says `integer`); 305.5, "305" and true are not."""

JSON_MEDIA_TYPE = "application/json"
ATLAS_MEDIA_PREFIX = "application/vnd.atlas."


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _acceptable(media_type: str, allow_atlas_versioned: bool) -> bool:
    if media_type == JSON_MEDIA_TYPE:
        return True
    return allow_atlas_versioned and media_type.startswith(ATLAS_MEDIA_PREFIX) and media_type.endswith("+json")


async def read_json(request: Request, *, allow_atlas_versioned: bool = False) -> Any:
    raw = await request.body()
    media_type = _media_type(request)
    if not _acceptable(media_type, allow_atlas_versioned):
        expected = "application/json" + (" or application/vnd.atlas.YYYY-MM-DD+json" if allow_atlas_versioned else "")
        raise ApiError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"Unsupported Content-Type {media_type or '(none)'!r}; send {expected}.",
            [media_type],
        )
    if not raw.strip():
        raise ApiError(ErrorCode.INVALID_JSON, "The request body is empty; a JSON document is expected.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(ErrorCode.INVALID_JSON, f"Received JSON is malformed: {error}.") from None


def validate(model: type[ModelT], payload: Any, *, read_only: Iterable[str] = ()) -> ModelT:
    """Validate `payload` against `model` (which must forbid extra fields)."""
    if not isinstance(payload, dict):
        raise ApiError(ErrorCode.INVALID_JSON, "The request body must be a JSON object.")
    for name in read_only:
        if name in payload:
            raise ApiError(ErrorCode.ATTRIBUTE_READ_ONLY, f"Attribute {name} is read-only and cannot be set.", [name])
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise _first_problem(error) from None


def _first_problem(error: ValidationError) -> ApiError:
    problem = error.errors(include_url=False)[0]
    attribute = ".".join(str(part) for part in problem["loc"]) or "body"
    kind = problem["type"]
    if kind == "missing":
        return ApiError(ErrorCode.MISSING_ATTRIBUTE, f"The required attribute {attribute} was not specified.", [attribute])
    if kind == "extra_forbidden":
        return ApiError(ErrorCode.INVALID_ATTRIBUTE, f"Invalid attribute {attribute} specified.", [attribute])
    if kind in ("enum", "literal_error"):
        return ApiError(
            ErrorCode.INVALID_ENUM_VALUE,
            f"An invalid enumeration value was specified for {attribute}: {problem['msg']}.",
            [attribute],
        )
    return ApiError(
        ErrorCode.INVALID_ATTRIBUTE,
        f"Invalid attribute {attribute} specified: {problem['msg']}.",
        [attribute],
    )


async def parse_body(request: Request, model: type[ModelT], *, read_only: Iterable[str] = (),
                     allow_atlas_versioned: bool = False) -> ModelT:
    payload = await read_json(request, allow_atlas_versioned=allow_atlas_versioned)
    return validate(model, payload, read_only=read_only)


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` that documents a body parsed by hand with `parse_body`."""
    return {
        "requestBody": {
            "required": True,
            "content": {JSON_MEDIA_TYPE: {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}},
        }
    }
