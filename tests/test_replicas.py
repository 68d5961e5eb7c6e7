"""Three `serve --no-agent` replicas on one PostgreSQL, behind a "load balancer" that sends each request
to the next replica in turn (no sticky sessions): any replica answers any request, and losing one —
or the database for a while — loses nothing.
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from livemigrate import link_token
from livemigrate.directory.orgs import CreatedOrg, create_org
from livemigrate.store.database import Store
from tests.load_balancer import LoadBalancer
from tests.migration_world import World
from tests.pg import EmbeddedPostgres
from tests.support import LIVEMIGRATE, LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess, free_port, wait_for

pytestmark = pytest.mark.xdist_group("replicas")  # one cluster for the module, on one test worker

SYNC_SECONDS = 2.0


class RoundRobin(httpx.BaseTransport):
    """Each request to the next replica, as a load balancer without sticky sessions; what each answered."""

    def __init__(self, ports: list[int]) -> None:
        self._count = len(ports)
        self._ports = itertools.cycle(ports)
        self._lock = threading.Lock()
        self._transport = httpx.HTTPTransport(verify=LOOPBACK_TLS)
        self.answers: list[tuple[int, int]] = []  # (port, status)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for attempt in range(self._count):  # a replica that refuses connections (killed) is skipped
            with self._lock:
                port = next(self._ports)
            request.url = request.url.copy_with(port=port)
            try:
                response = self._transport.handle_request(request)
                break
            except httpx.ConnectError:
                if attempt == self._count - 1:
                    raise
        with self._lock:
            self.answers.append((port, response.status_code))
        return response

    def close(self) -> None:
        self._transport.close()


@dataclass
class Cluster:
    postgres: EmbeddedPostgres
    balancer: LoadBalancer
    replicas: list[ServerProcess]
    source: OrgCredentials
    target: OrgCredentials
    transports: list[RoundRobin] = field(default_factory=list)

    def client(self, credentials: OrgCredentials, starting_at: int = 0) -> httpx.Client:
        """A client whose every request goes to the next live replica, the first to the `starting_at`-th."""
        live = [replica.port for replica in self.replicas if replica.process and replica.process.poll() is None]
        first = starting_at % len(live)
        transport = RoundRobin(live[first:] + live[:first])
        self.transports.append(transport)
        return httpx.Client(base_url=self.replicas[0].base_url, auth=credentials.auth, transport=transport,
                            timeout=30)

    def new_org_pairs(self, count: int) -> list[tuple[OrgCredentials, OrgCredentials]]:
        """Source and target orgs made in the store at once, as `admin create-org` makes them."""
        store = Store(self.replicas[0].env["LIVEMIGRATE_DATABASE_URL"])
        try:
            return [(_credentials(create_org(store, "source", f"busy source {n}", "owner")),
                     _credentials(create_org(store, "target", f"busy target {n}", "owner"))) for n in range(count)]
        finally:
            store.dispose()

    def new_org(self, side: str, name: str) -> OrgCredentials:
        """Through the API, by the side's first owner."""
        return self.replicas[0].new_org(self.source if side == "source" else self.target, side, name)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("replicas")
    postgres = EmbeddedPostgres(directory / "postgres")
    url = postgres.new_database()
    shared = {"LIVEMIGRATE_SECRET_KEY": secrets.token_urlsafe(32), "LIVEMIGRATE_HOST_PROBE_SECONDS": "1",
              # Long enough that only another replica's NOTIFY can explain a cache dropping its entry in time.
              "LIVEMIGRATE_READ_CACHE_SECONDS": "60",
              "LIVEMIGRATE_AGENT_CAPTURE": "collection"}  # nx-27017: no deployment-wide change stream
    ports = [free_port() for _ in range(3)]
    balancer = LoadBalancer(ports).start()  # link-tokens name it: the link channel goes through it too
    shared["LIVEMIGRATE_PUBLIC_URL"] = balancer.url
    replicas = [ServerProcess(directory / f"replica{number}", sync_seconds=SYNC_SECONDS, database_url=url,
                              extra_env=shared, port=port) for number, port in enumerate(ports)]
    source = replicas[0].admin_create_org("source", "replicated source")
    target = replicas[0].admin_create_org("target", "replicated target")
    _start_together(replicas)  # as a deployment would: the schema and the first start are theirs to share
    yield Cluster(postgres, balancer, replicas, source, target)
    for replica in replicas:
        replica.stop()
    balancer.stop()
    postgres.cleanup()


def _start_together(replicas: list[ServerProcess]) -> None:
    for replica in replicas:
        threading.Thread(target=replica.start).start()
    assert wait_for(lambda: all(_healthy(replica) for replica in replicas), timeout=60)


def _working_migration(world: World, documents: int) -> str:
    """A migration of `documents` created through the replicas and reported WORKING by its host; its id."""
    world.ready_to_migrate(documents=documents)
    created = world.target_call("POST", "/liveMigrations", json=world.request_body())
    assert created.status_code == 201, created.text
    migration_id = str(created.json()["_id"])
    world.wait_migration(migration_id, lambda m: m["status"] == "WORKING", timeout=60)
    return migration_id


def _credentials(created: CreatedOrg) -> OrgCredentials:
    assert created.api_key is not None
    return OrgCredentials(created.org.id, created.api_key.api_key.public_key, created.api_key.private_key)


def _lease_holder(cluster: Cluster) -> tuple[str, ServerProcess]:
    """The replica running the background loops, by the lease it holds."""
    def holder() -> str | None:
        rows = cluster.replicas[-1].query("SELECT holder FROM leases WHERE name = 'link-sync' AND expires_at > now()")
        return str(rows[0][0]) if rows else None

    assert wait_for(lambda: holder() is not None, timeout=3 * SYNC_SECONDS)
    name = holder()
    assert name is not None
    return name, next(replica for replica in cluster.replicas
                      if replica.process is not None and f":{replica.process.pid}:" in name)


def _cut_over_while_another_replica_long_polls(cluster: Cluster, world: World, migration_id: str) -> tuple[int, float]:
    """Long-poll the link channel's job list at one live replica (as a source relays its hosts' polls),
    cut over at another; the poll's status, and how long after the cutover's answer it came."""
    claims = link_token.decode(world.link_token)
    link_key = httpx.DigestAuth(claims.publicKey, claims.privateKey)
    polled, cut_at = [replica for replica in cluster.replicas if replica.process and replica.process.poll() is None][:2]
    jobs = f"{TARGET}/orgs/{world.target.org_id}/liveMigrations/links/{world.source.org_id}/jobs"
    answer: dict[str, float] = {}

    def poll() -> None:
        """As a relay does: wait on the version held, and again on each new one, until the cutover shows."""
        held = httpx.get(f"{polled.base_url}{jobs}", auth=link_key, verify=LOOPBACK_TLS).headers["etag"]
        while True:
            response = httpx.get(f"{polled.base_url}{jobs}", auth=link_key, timeout=30,
                                 headers={"If-None-Match": held, "Prefer": "wait=20"}, verify=LOOPBACK_TLS)
            if response.status_code != 200 or any(job["cutoverRequested"] for job in response.json()["results"]):
                answer.update(status=response.status_code, at=time.monotonic())
                return
            held = response.headers["etag"]

    waiting = threading.Thread(target=poll)
    waiting.start()
    time.sleep(1.0)  # the poll is waiting at the other replica now
    asking = time.monotonic()
    cutover = httpx.put(f"{cut_at.base_url}{TARGET}/groups/{world.target_project['id']}/liveMigrations/"
                        f"{migration_id}/cutover", auth=world.target.auth, verify=LOOPBACK_TLS)
    asked = time.monotonic()
    assert cutover.status_code == 202, cutover.text
    waiting.join(timeout=30)
    assert answer["at"] >= asking  # the list it answered with carries the cutover: it cannot come earlier
    return int(answer["status"]), answer["at"] - asked


def _healthy(replica: ServerProcess) -> bool:
    try:
        return httpx.get(f"{replica.base_url}/healthz", timeout=1, verify=LOOPBACK_TLS).status_code == 200
    except httpx.HTTPError:
        return False


def _link(cluster: Cluster, source: OrgCredentials, target: OrgCredentials) -> None:
    with cluster.client(target) as client:
        token = client.post(f"{TARGET}/orgs/{target.org_id}/liveMigrations/linkTokens",
                            json={"accessListIps": ["127.0.0.1"]}).json()["linkToken"]
    with cluster.client(source) as client:
        answer = client.post(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink", json={"linkToken": token})
    assert answer.json() == {"status": "SYNCED"}, cluster.replicas[-1].query(
        "SELECT last_sync_error FROM source_links WHERE source_org_id = ?", source.org_id)


def test_the_link_flow_with_every_request_at_another_replica(cluster: Cluster) -> None:
    source, target = cluster.new_org("source", "round robin source"), cluster.new_org("target", "round robin target")
    _link(cluster, source, target)
    status = f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink/status"
    with cluster.client(source) as client:
        # httpx reuses the nonce with an increasing nc, as MongoDB's clients do: each at another replica.
        assert [client.get(status).json()["status"] for _ in range(6)] == ["SYNCED"] * 6
        answers = cluster.transports[-1].answers
        assert [answer for _, answer in answers] == [401] + [200] * 6  # one challenge, then one nonce throughout
        assert answers[0][0] != answers[1][0]  # the challenge of one replica answered at another
        assert {port for port, _ in answers} == {replica.port for replica in cluster.replicas}
        assert client.delete(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink").status_code == 204
        assert client.get(status).status_code == 404


def test_a_nonce_count_used_at_one_replica_is_refused_at_another(cluster: Cluster) -> None:
    first, second = cluster.replicas[0], cluster.replicas[1]
    uri = f"{SOURCE}/orgs/{cluster.source.org_id}"
    with httpx.Client(base_url=first.base_url, auth=cluster.source.auth, verify=LOOPBACK_TLS) as client:
        accepted = client.get(uri)
    assert accepted.status_code == 200
    replayed = httpx.get(f"{second.base_url}{uri}", headers={"Authorization": accepted.request.headers["Authorization"]}, verify=LOOPBACK_TLS)
    assert replayed.status_code == 401 and replayed.json()["errorCode"] == "USER_UNAUTHORIZED"
    assert "replayed" in replayed.json()["detail"]


def test_a_key_deleted_at_one_replica_is_refused_at_the_others_at_once(cluster: Cluster) -> None:
    doomed = cluster.new_org("source", "short-lived key")
    uri = f"{SOURCE}/orgs/{doomed.org_id}"
    for replica in cluster.replicas:  # every replica has the key in its cache now
        assert httpx.get(f"{replica.base_url}{uri}", auth=doomed.auth, verify=LOOPBACK_TLS).status_code == 200
    # The org's owner deletes its own key at the first replica …
    [key] = [key for key in httpx.get(f"{cluster.replicas[0].base_url}{SOURCE}/orgs/{doomed.org_id}/apiKeys",
                                      auth=doomed.auth, verify=LOOPBACK_TLS).json()["results"] if key["publicKey"] == doomed.public_key]
    deleted = httpx.delete(f"{cluster.replicas[0].base_url}{SOURCE}/orgs/{doomed.org_id}/apiKeys/{key['id']}",
                           auth=doomed.auth, verify=LOOPBACK_TLS)
    assert deleted.status_code == 204
    # … and the others refuse it within a second, not at their cache's 60 s.
    for replica in cluster.replicas[1:]:
        assert wait_for(lambda replica=replica: httpx.get(f"{replica.base_url}{uri}", auth=doomed.auth, verify=LOOPBACK_TLS).status_code
                        == 401, timeout=1.0)


def test_fifty_concurrent_connects_over_three_replicas(cluster: Cluster) -> None:
    pairs = cluster.new_org_pairs(50)
    with ThreadPoolExecutor(max_workers=25) as pool:
        list(pool.map(lambda pair: _link(cluster, *pair), pairs))

    def status_of(source: OrgCredentials) -> str:
        with cluster.client(source) as client:
            return str(client.get(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink/status").json()["status"])

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = set(pool.map(status_of, [source for source, _ in pairs]))
    assert statuses == {"SYNCED"}, cluster.replicas[0].query(
        "SELECT source_org_id, last_sync_error FROM source_links WHERE status <> 'SYNCED'")
    answers = [answer for transport in cluster.transports for _, answer in transport.answers]
    assert [answer for answer in answers if answer >= 500] == []
    # Unlinked again, concurrently too: fifty links pushed every interval would load the tests after this.
    def unlink(source: OrgCredentials) -> int:
        with cluster.client(source) as client:
            return client.delete(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink").status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        assert set(pool.map(unlink, [source for source, _ in pairs])) == {204}


def test_fifty_racing_connects_relinks_and_deletes_of_one_org_over_three_replicas_end_in_one_consistent_link(
        cluster: Cluster) -> None:
    source, target = cluster.new_org("source", "raced source"), cluster.new_org("target", "raced target")
    with cluster.client(source) as client:
        project = client.post(f"{SOURCE}/groups", json={"name": "raced orders", "orgId": source.org_id}).json()
    with cluster.client(target) as client:
        tokens = [client.post(f"{TARGET}/orgs/{target.org_id}/liveMigrations/linkTokens",
                              json={"accessListIps": ["127.0.0.1"]}).json()["linkToken"] for _ in range(2)]
    link = f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink"
    calls = 50
    all_challenged = threading.Barrier(calls)

    def race(index: int) -> httpx.Response:
        """A connect with one token or the other, or a delete, each at the next replica, all let go at once."""
        with cluster.client(source, starting_at=index) as client:  # each call's replica in turn
            client.get(f"{link}/status")  # the digest challenge answered before the race starts
            all_challenged.wait(timeout=30)
            if index % 2:
                return client.delete(link)
            return client.post(link, json={"linkToken": tokens[index // 2 % 2]})

    with ThreadPoolExecutor(max_workers=calls) as pool:
        answers = list(pool.map(race, range(calls)))
    assert all(answer.status_code in (200, 204, 404, 409) for answer in answers), \
        [answer.text for answer in answers if answer.status_code >= 500]
    assert all(answer.json()["status"] in ("SYNCED", "NOT_SYNCED") for answer in answers if answer.status_code == 200)

    source_link = cluster.replicas[0].query("SELECT status, link_public_key FROM source_links WHERE source_org_id = ?",
                                            source.org_id)
    held_by_target = cluster.replicas[0].query(
        "SELECT k.public_key, t.inventory FROM target_links t JOIN link_tokens lt ON lt.id = t.link_token_id "
        "JOIN api_keys k ON k.id = lt.api_key_id WHERE t.target_org_id = ? AND t.source_org_id = ?",
        target.org_id, source.org_id)

    def status_answers() -> set[tuple[int, str]]:  # one from each replica
        with cluster.client(source) as client:
            client.get(f"{link}/status")
            answered = [client.get(f"{link}/status") for _ in cluster.replicas]
        return {(answer.status_code, answer.json().get("status") or answer.json()["errorCode"]) for answer in answered}

    if source_link:
        [(status, public_key)] = source_link
        assert status == "SYNCED", cluster.replicas[0].query(
            "SELECT last_sync_error FROM source_links WHERE source_org_id = ?", source.org_id)
        assert wait_for(lambda: status_answers() == {(200, status)}, timeout=2), (status, status_answers())
        # The target holds the link by the token the source kept, with the org's project.
        assert [(key, [entry["projectId"] for entry in inventory["projects"]]) for key, inventory in held_by_target] \
            == [(public_key, [project["id"]])]
        with cluster.client(source) as client:
            assert client.delete(link).status_code == 204  # no interval pushes left to load the tests after this
    else:
        assert wait_for(lambda: status_answers() == {(404, "ORG_LINK_NOT_FOUND")}, timeout=2), status_answers()
        # Unlinked: the target lists none of the org's projects any more.
        assert all(inventory["projects"] == [] for _, inventory in held_by_target), held_by_target


def test_first_pushes_of_one_source_org_racing_at_three_replicas_all_register_one_link(cluster: Cluster) -> None:
    """The link channel's receiving end on its own: a source of another deployment (or two of its
    replicas) may push at once before the target holds the link; each push registers, none answers 5xx."""
    target = cluster.new_org("target", "raced link channel")
    with cluster.client(target) as client:
        token = client.post(f"{TARGET}/orgs/{target.org_id}/liveMigrations/linkTokens",
                            json={"accessListIps": ["127.0.0.1"]}).json()["linkToken"]
    claims = link_token.decode(token)
    source_org_ids = [secrets.token_hex(12) for _ in range(8)]
    clients = [httpx.Client(base_url=replica.base_url, auth=httpx.DigestAuth(claims.publicKey, claims.privateKey),
                            verify=LOOPBACK_TLS, timeout=30) for replica in cluster.replicas]
    all_ready = threading.Barrier(len(clients))

    def push(client: httpx.Client, source_org_id: str) -> int:
        links = f"{TARGET}/orgs/{target.org_id}/liveMigrations/links"
        client.get(f"{links}/{source_org_id}/jobs")  # the digest challenge answered before the race starts
        all_ready.wait(timeout=30)
        inventory = {"projects": [{"projectId": source_org_id, "name": "raced", "deployments": [], "migrationHosts": []}]}
        return client.put(f"{links}/{source_org_id}", json=inventory).status_code

    try:
        with ThreadPoolExecutor(max_workers=len(clients)) as pool:
            for source_org_id in source_org_ids:
                assert list(pool.map(push, clients, [source_org_id] * len(clients))) == [200] * len(clients)
    finally:
        for client in clients:
            client.close()
    registered = cluster.replicas[0].query("SELECT source_org_id, count(*) FROM target_links WHERE target_org_id = ? "
                                           "GROUP BY source_org_id", target.org_id)
    assert sorted(registered) == sorted((source_org_id, 1) for source_org_id in source_org_ids)


def test_postgres_stopped_answers_503_and_service_resumes_when_it_returns(cluster: Cluster) -> None:
    projects = f"{SOURCE}/groups"
    with cluster.client(cluster.source) as client:
        cluster.postgres.stop()
        try:
            refused = client.post(projects, json={"name": "written during the outage", "orgId": cluster.source.org_id})
            assert refused.status_code in (401, 503)  # the challenge needs no store; the answer to it does
            if refused.status_code == 401:
                refused = client.post(projects, json={"name": "written during the outage",
                                                      "orgId": cluster.source.org_id})
            assert refused.status_code == 503, refused.text
            assert set(refused.json()) == {"detail", "error", "errorCode", "parameters", "reason"}
            assert refused.json()["errorCode"] == "SERVICE_UNAVAILABLE"
        finally:
            cluster.postgres.start_again()
        assert wait_for(lambda: client.get(projects).status_code == 200, timeout=15)
        names = [project["name"] for project in client.get(projects).json()["results"]]
    assert "written during the outage" not in names
    for replica in cluster.replicas:  # every replica serves again, without a restart
        with httpx.Client(base_url=replica.base_url, auth=cluster.source.auth, verify=LOOPBACK_TLS) as direct:
            assert wait_for(lambda direct=direct: direct.get(projects).status_code == 200, timeout=15)


def test_the_lease_holder_killed_another_replica_takes_the_background_loops_over(cluster: Cluster) -> None:
    source, target = cluster.new_org("source", "kept in sync"), cluster.new_org("target", "kept in sync")
    _link(cluster, source, target)

    def pushes() -> int:  # the target's access logs, all replicas: each inventory push of this link
        line = f"PUT {TARGET}/orgs/{target.org_id}/liveMigrations/links/{source.org_id}"
        return sum(replica.log_text().count(line) for replica in cluster.replicas)

    # Once per interval across the replicas, not once per replica.
    before, window = pushes(), 4 * SYNC_SECONDS
    time.sleep(window)
    assert 1 <= pushes() - before <= window / SYNC_SECONDS + 2
    holder, victim = _lease_holder(cluster)
    victim.kill()
    killed_at = time.monotonic()

    def new_holder() -> str | None:
        rows = cluster.replicas[0].query("SELECT holder FROM leases WHERE name = 'link-sync' "
                                         "AND expires_at > now()")
        return rows[0][0] if rows and rows[0][0] != holder else None

    assert wait_for(lambda: new_holder() is not None, timeout=2 * SYNC_SECONDS + 3)
    taken_after = time.monotonic() - killed_at
    # The interval pushes go on from the new holder: the link's last push moves on, and it stays SYNCED.
    [(synced_before,)] = cluster.replicas[0].query(
        "SELECT last_synced_at FROM source_links WHERE source_org_id = ?", source.org_id)
    assert wait_for(lambda: cluster.replicas[0].query(
        "SELECT last_synced_at FROM source_links WHERE source_org_id = ?", source.org_id)[0][0] > synced_before,
        timeout=3 * SYNC_SECONDS + 2)
    with cluster.client(source) as client:
        assert client.get(f"{SOURCE}/orgs/{source.org_id}/liveExport/migrationLink/status").json() == {
            "status": "SYNCED"}
    assert taken_after <= 2 * SYNC_SECONDS + 3


class BalancedApi:
    """The replicas as `World` uses an API: the agent at the balancer's URL, every call of the test at the
    next replica in turn."""

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self.base_url = cluster.balancer.url

    def client(self, credentials: OrgCredentials) -> httpx.Client:
        return self._cluster.client(credentials)

    def admin_create_org(self, side: str, name: str) -> OrgCredentials:
        return self._cluster.replicas[0].admin_create_org(side, name)

    def link_token(self, target: OrgCredentials) -> str:
        with self.client(target) as client:
            response = client.post(f"{TARGET}/orgs/{target.org_id}/liveMigrations/linkTokens",
                                   json={"accessListIps": ["127.0.0.1"]})
        return str(response.json()["linkToken"])

    def log_text(self) -> str:
        return "\n".join(replica.log_text() for replica in self._cluster.replicas)


def test_a_full_migration_through_the_replicas_survives_losing_one(cluster: Cluster, tmp_path: Path) -> None:
    world = World(tmp_path, api=BalancedApi(cluster))
    try:
        migration_id = _working_migration(world, 3000)
        _lease_holder(cluster)[1].kill()  # and with it whatever the agent's long poll or the link channel held there
        world.wait_migration(migration_id, lambda m: m["readyForCutover"], timeout=120)
        for replica in cluster.replicas:  # the replicas lost so far come back and serve at once
            if replica.process is not None and replica.process.poll() is not None:
                replica.start()
        # The cutover asked at one replica wakes a job list long-polled at another within a second.
        waited, answered_after = _cut_over_while_another_replica_long_polls(cluster, world, migration_id)
        assert waited == 200 and answered_after < 1.0, (waited, answered_after)
        done = world.wait_migration(migration_id, lambda m: m["status"] in ("COMPLETE", "FAILED"), timeout=120)
        assert done["status"] == "COMPLETE", done
        verified = subprocess.run([LIVEMIGRATE, "verify", world.source_db.uri, world.destination_db.uri],
                                  capture_output=True, text=True, timeout=120, check=False)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    finally:
        world.close()


def test_a_migration_ready_past_its_window_expires_with_the_lease_holder_killed(cluster: Cluster,
                                                                                 tmp_path: Path) -> None:
    """The module's last test: it restarts the replicas with a cutover window of 3.6 s and leaves them so."""
    for replica in cluster.replicas:
        replica.stop()
        replica.env["LIVEMIGRATE_CUTOVER_WINDOW_HOURS"] = "0.001"
    _start_together(cluster.replicas)
    world = World(tmp_path, api=BalancedApi(cluster))
    try:
        migration_id = _working_migration(world, 300)
        _lease_holder(cluster)[1].kill()
        expired = world.wait_migration(migration_id, lambda m: m["status"] in ("EXPIRED", "FAILED", "COMPLETE"),
                                       timeout=120)
        assert expired["status"] == "EXPIRED" and "no cutover" in expired["errorMessage"], expired
        assert wait_for(lambda: "no longer running on the target side" in world.agent_log(), timeout=30)
    finally:
        world.close()
