"""Paginated lists in Cloud Manager's shape: results, totalCount and self/previous/next links."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request

from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.http.middleware import parse_bool

ItemT = TypeVar("ItemT")

DEFAULT_ITEMS_PER_PAGE = 100
MAX_ITEMS_PER_PAGE = 500


@dataclass(frozen=True, slots=True)
class Page:
    page_num: int
    items_per_page: int
    include_count: bool

    @property
    def offset(self) -> int:
        return (self.page_num - 1) * self.items_per_page


def _positive_int(request: Request, name: str, default: int, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1 or (maximum is not None and int(raw) > maximum):
        bound = f" between 1 and {maximum}" if maximum else " of at least 1"
        raise ApiError(ErrorCode.INVALID_QUERY_PARAMETER, f"Invalid query parameter {name}: expected an integer{bound}.", [name])
    return int(raw)


def page_of(request: Request) -> Page:
    include = request.query_params.get("includeCount")
    return Page(
        page_num=_positive_int(request, "pageNum", 1),
        items_per_page=_positive_int(request, "itemsPerPage", DEFAULT_ITEMS_PER_PAGE, MAX_ITEMS_PER_PAGE),
        include_count=True if include is None else parse_bool("includeCount", include),
    )


def link(rel: str, href: str) -> dict[str, str]:
    return {"rel": rel, "href": href}


def paginated(request: Request, items: Sequence[ItemT], render: Callable[[ItemT], dict[str, Any]]) -> dict[str, Any]:
    """Cut one page out of `items` and describe it with links to its neighbours."""
    page = page_of(request)
    total = len(items)
    chosen = items[page.offset : page.offset + page.items_per_page]

    def href(page_num: int) -> str:
        params = dict(request.query_params)
        params.update(pageNum=str(page_num), itemsPerPage=str(page.items_per_page))
        return f"{str(request.url).split('?', 1)[0]}?{urlencode(params)}"

    links = [link("self", href(page.page_num))]
    if page.page_num > 1:
        links.append(link("previous", href(page.page_num - 1)))
    if page.offset + page.items_per_page < total:
        links.append(link("next", href(page.page_num + 1)))
    body: dict[str, Any] = {"links": links, "results": [render(item) for item in chosen]}
    if page.include_count:
        body["totalCount"] = total
    return body
