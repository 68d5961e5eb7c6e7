"""Migration hosts: 200 simulated hosts of one project talking to three replicas on one PostgreSQL.

Each host does what `livemigrate agent` does when idle (agent/host.py), and a little more, on two
keep-alive connections of its own (spread over the replicas, as a balancer spreads its clients): one
holds the job list long-polled (`If-None-Match` + `Prefer: wait=10`, relayed over the link to the
target, as every real poll is), the other sends a heartbeat every 10 s and then asks for the job list
once without waiting — which an agent does only when it starts, and which here doubles the job lists
the replicas answer.

Two phases. The hosts register first, spread over one heartbeat interval: each one's first heartbeat
adds it to the project (a write every replica hears of, and an inventory pushed over the link) and
its long poll begins. Then, once all of them are idle, the routine is measured for `SECONDS`. The
200 registrations make the first seconds slow for every request (up to half a second here, with
all 200 arriving within 10 s); they are shown apart, and the target is the routine's.

Figures: latency p50/p99 of the routine heartbeats; of the job lists answered at once; of the long
polls, as the time one takes past its wait to be answered when nothing changed (the source replica,
the relay to the target's, and back); those of the registrations; and every answer that was not the
expected one (an error). All of it — three replicas, PostgreSQL and the 400 connections' client —
shares this machine's two cores. Targets (issue: the control plane on PostgreSQL): heartbeat p99 <
100 ms, 0 errors.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.load_balancer import LoadBalancer
from tests.pg import EmbeddedPostgres
from tests.support import SOURCE, ServerProcess, free_port

from bench.http_load import DigestConnection

HOSTS = 200
REPLICAS = 3
SECONDS = 40.0
HEARTBEAT_SECONDS = 10.0  # as the agent (agent/host.py)
WAIT_SECONDS = 10.0
SETTLE_SECONDS = 5.0  # after the last registration, before the routine is measured
TARGET_P99_MS = 100.0


@dataclass
class Observed:
    heartbeats: list[float] = field(default_factory=list)  # seconds, routine ones
    job_lists: list[float] = field(default_factory=list)  # routine ones, answered at once
    job_polls: list[float] = field(default_factory=list)  # seconds past its wait that a routine long poll took
    registrations: list[float] = field(default_factory=list)  # a host's first heartbeat and job list
    long_polls: int = 0
    errors: list[str] = field(default_factory=list)


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000 if ordered else float("nan")


async def _host(number: int, port: int, group: str, key: tuple[str, str], routine_from: float, deadline: float,
                seen: Observed) -> None:
    hostname = f"mh{number:03}.example"
    jobs_uri = f"{SOURCE}/groups/{group}/liveMigrations/agentJobs?hostname={hostname}"
    heartbeat_uri = f"{SOURCE}/groups/{group}/liveMigrations/migrationHosts/{hostname}"
    body = json.dumps({"agentVersion": "bench"}).encode()
    beats, polls = DigestConnection("127.0.0.1", port, key), DigestConnection("127.0.0.1", port, key)
    offset = random.uniform(0, HEARTBEAT_SECONDS)  # hosts start, and so beat, at different times

    async def call(label: str, method: str, uri: str, payload: bytes, latencies: list[float]) -> None:
        started = time.perf_counter()
        status, _, _ = await beats.request(method, uri, payload)
        if status == 200:
            latencies.append(time.perf_counter() - started)
        else:
            seen.errors.append(f"{label} {status}")

    async def routine() -> None:
        await asyncio.sleep(max(0.0, routine_from - time.monotonic()) + offset)
        while time.monotonic() < deadline:
            await call("heartbeat", "PUT", heartbeat_uri, body, seen.heartbeats)
            await call("job list", "GET", jobs_uri, b"", seen.job_lists)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def long_poll() -> None:
        status, headers, _ = await polls.request("GET", jobs_uri)
        etag = headers.get("etag", "")
        while time.monotonic() < deadline and status == 200:
            started = time.monotonic()
            status, headers, _ = await polls.request("GET", jobs_uri, headers={
                "If-None-Match": etag, "Prefer": f"wait={WAIT_SECONDS:g}"})
            waited = time.monotonic() - started
            if status == 304 and waited < WAIT_SECONDS + 2:
                seen.long_polls += 1
                if started >= routine_from:
                    seen.job_polls.append(max(0.0, waited - WAIT_SECONDS))
                status = 200
            else:
                seen.errors.append(f"long poll {status} after {waited:.1f} s")

    try:
        await asyncio.sleep(offset)
        registration = time.perf_counter()
        await call("heartbeat", "PUT", heartbeat_uri, body, [])
        await call("job list", "GET", jobs_uri, b"", [])
        seen.registrations.append(time.perf_counter() - registration)
        await asyncio.gather(routine(), long_poll())
    finally:
        beats.close()
        polls.close()


async def _load(ports: list[int], group: str, key: tuple[str, str]) -> Observed:
    seen = Observed()
    routine_from = time.monotonic() + HEARTBEAT_SECONDS + SETTLE_SECONDS
    deadline = routine_from + SECONDS
    await asyncio.gather(*(_host(number, ports[number % len(ports)], group, key, routine_from, deadline, seen)
                           for number in range(HOSTS)))
    return seen


def _measure(directory: Path, postgres: EmbeddedPostgres) -> Observed:
    ports = [free_port() for _ in range(REPLICAS)]
    balancer = LoadBalancer(ports).start()  # the link-token names it: each relayed poll goes through it
    shared = {"LIVEMIGRATE_LOG_LEVEL": "WARNING", "LIVEMIGRATE_SECRET_KEY": secrets.token_urlsafe(32),
              "LIVEMIGRATE_PUBLIC_URL": balancer.url}
    url = postgres.new_database()
    replicas = [ServerProcess(directory / f"replica{number}", sync_seconds=60, database_url=url, extra_env=shared,
                              port=port) for number, port in enumerate(ports)]
    source = replicas[0].admin_create_org("source", "bench source")
    target = replicas[0].admin_create_org("target", "bench target")
    for replica in replicas:
        replica.start()
    try:
        first = replicas[0]
        token = first.link_token(target)
        with httpx.Client(base_url=first.base_url, auth=source.auth, timeout=30) as client:
            linked = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink", json={"linkToken": token})
            assert linked.json() == {"status": "SYNCED"}, linked.text
            group = client.post(f"{SOURCE}/groups", json={"name": "hosts", "orgId": source.org_id}).json()["id"]
            agent_key = client.post(f"{SOURCE}/groups/{group}/agentapikeys", json={"desc": "bench"}).json()["key"]
        public, _, private = str(agent_key).partition(".")
        return asyncio.run(_load(ports, group, (public, private)))
    finally:
        for replica in replicas:
            replica.stop()
        balancer.stop()


def run() -> list[str]:
    with tempfile.TemporaryDirectory() as directory:
        postgres = EmbeddedPostgres(Path(directory) / "postgres")
        try:
            seen = _measure(Path(directory), postgres)
        finally:
            postgres.cleanup()
    heartbeat_p99 = _percentile(seen.heartbeats, 0.99)
    print(f"migration hosts: {HOSTS} simulated idle hosts, {REPLICAS} replicas on PostgreSQL, {SECONDS:.0f} s of "
          "routine after they registered, this machine's 2 cores")
    for label, values in (("heartbeat", seen.heartbeats), ("job list, at once", seen.job_lists),
                          ("long poll, past wait", seen.job_polls), ("first beat and list", seen.registrations)):
        print(f"  {label:<20} {len(values):6} calls   p50 {_percentile(values, 0.5):6.1f} ms   "
              f"p99 {_percentile(values, 0.99):6.1f} ms   mean {statistics.fmean(values) * 1000:6.1f} ms")
    print(f"  long polls ended    {seen.long_polls:6}        (each waits {WAIT_SECONDS:g} s for a change)")
    print(f"  errors              {len(seen.errors):6}        {sorted(set(seen.errors))[:5]}")
    failures = []
    if seen.errors:
        failures.append(f"{len(seen.errors)} errors")
    if not heartbeat_p99 < TARGET_P99_MS:
        failures.append(f"heartbeat p99 {heartbeat_p99:.0f} ms >= {TARGET_P99_MS:.0f} ms")
    print(f"  verdict             {'PASS' if not failures else 'FAIL: ' + '; '.join(failures)}")
    return failures


if __name__ == "__main__":
    sys.exit(1 if run() else 0)
