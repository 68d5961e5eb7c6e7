"""The source side's calls to the target side (API.md §5), authenticated with the link key.

Every call is outbound from the source environment. A push has three outcomes the caller must
tell apart: accepted, refused by the target (the token is no longer good — say why), or the
target could not be reached (try again later).
"""

from __future__ import annotations

import enum
import functools
import ssl
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from livemigrate.client.errors import ApiCallError
from livemigrate.client.waiting import wait_options
from livemigrate.contracts import Inventory, LinkJob, LinkPushAnswer, ProgressReport, ReportAnswer, describe_invalid


class PushOutcome(enum.Enum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class PushResult:
    outcome: PushOutcome
    reason: str | None = None
    last_synced_at: str | None = None


@dataclass(frozen=True, slots=True)
class JobList:
    """The target's job list and its version (ETag); `results` is None when it did not change."""

    results: list[LinkJob] | None
    etag: str | None


# Answers that mean "this link key is not (or no longer) good here", as opposed to a passing fault.
_REJECTING_STATUSES = {401, 403, 404}

# A connection the other end (or a balancer between) closed as the request went out: the request did
# not reach a server, or reached it only to be cut, so an idempotent call is made once more.
_CUT_CONNECTION = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every channel of the process: httpx builds one per client otherwise, loading
    the whole CA bundle each time, a cost each link push would pay. The same trust as httpx's default (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)."""
    return httpx.create_ssl_context()


class LinkChannel:
    def __init__(self, target_base_url: str, public_key: str, private_key: str, timeout_seconds: float) -> None:
        self._client = httpx.AsyncClient(
            base_url=target_base_url.rstrip("/"),
            verify=_tls(),
            auth=httpx.DigestAuth(public_key, private_key),
            timeout=timeout_seconds,
            headers={"User-Agent": "livemigrate-link/1"},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _idempotent(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **options)
        except _CUT_CONNECTION:
            return await self._client.request(method, path, **options)

    async def list_jobs(self, target_org_id: str, source_org_id: str, held: str | None = None,
                        wait_seconds: float | None = None) -> JobList:
        """The running migrations of this source org (they carry connection strings: never log them).
        With the version `held` and `wait_seconds`, the target answers once the list differs from it,
        or with no list when the wait is over (long polling)."""
        try:
            response = await self._idempotent("GET", f"/orgs/{target_org_id}/liveMigrations/links/{source_org_id}/jobs",
                                              **wait_options(held, wait_seconds))
        except httpx.HTTPError as error:
            raise LinkCallFailed(f"target unreachable: {type(error).__name__}: {error}") from None
        if response.status_code == 304:
            return JobList(None, response.headers.get("etag"))
        answer = await _checked(response)
        try:
            jobs = [LinkJob.model_validate(item) for item in answer["results"]]
        except ValidationError as error:
            raise LinkCallFailed(f"the target sent a job list this source cannot read: {describe_invalid(error)}") \
                from None
        except (KeyError, TypeError):
            raise LinkCallFailed("the target sent a job list this source cannot read: no results") from None
        return JobList(jobs, response.headers.get("etag"))

    async def report_progress(self, target_org_id: str, source_org_id: str, job_id: str,
                              report: ProgressReport) -> ReportAnswer:
        """One report, made once more on a cut connection as every idempotent call is: the target records a
        report twice as once (a final one changes nothing once the migration is finished), and a report
        whose answer was cut on the way back is otherwise lost to the migration host, which would then
        wait for the next tick to learn an outcome the target already holds."""
        try:
            response = await self._idempotent(
                "PATCH", f"/orgs/{target_org_id}/liveMigrations/links/{source_org_id}/jobs/{job_id}",
                json=report.to_json())
        except httpx.HTTPError as error:
            raise LinkCallFailed(f"target unreachable: {type(error).__name__}: {error}") from None
        try:
            return ReportAnswer.model_validate(await _checked(response))
        except ValidationError as error:
            raise LinkCallFailed(f"the target answered a report this side cannot read: {describe_invalid(error)}") \
                from None

    async def push_inventory(self, target_org_id: str, source_org_id: str, inventory: Inventory) -> PushResult:
        path = f"/orgs/{target_org_id}/liveMigrations/links/{source_org_id}"
        try:
            response = await self._idempotent("PUT", path, json=inventory.model_dump(mode="json"))
        except httpx.HTTPError as error:
            return PushResult(PushOutcome.UNREACHABLE, f"target unreachable: {type(error).__name__}: {error}")
        if response.status_code == 200:
            try:
                answer = LinkPushAnswer.model_validate(response.json())
            except ValueError as error:  # not JSON, or not the contract: the push landed, its time unknown
                return PushResult(PushOutcome.ACCEPTED, f"the target's answer is unreadable: {error}")
            return PushResult(PushOutcome.ACCEPTED, last_synced_at=answer.lastSyncedAt)
        refusal = ApiCallError.from_response(response)
        outcome = PushOutcome.REJECTED if response.status_code in _REJECTING_STATUSES else PushOutcome.UNREACHABLE
        return PushResult(outcome, f"{refusal.error_code}: {refusal.detail}")


class LinkCallFailed(Exception):
    """A job call over the link did not get an answer it could use; the message says why."""


class LinkKeyRefused(LinkCallFailed):
    """The target answered 401 to the link's key: revoked or deleted there, which no retry changes."""


async def _checked(response_or_error: httpx.Response) -> Any:
    if response_or_error.status_code >= 400:
        refusal = ApiCallError.from_response(response_or_error)
        failure = LinkKeyRefused if refusal.status == 401 else LinkCallFailed
        raise failure(f"the target answered {refusal.status} {refusal.error_code}: {refusal.detail}")
    return response_or_error.json()
