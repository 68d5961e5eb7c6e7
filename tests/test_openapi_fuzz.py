"""/openapi.json tells the truth: schemathesis, an independent OpenAPI fuzzer, reads the document the
server serves, generates requests for every operation of both sides, sends them with digest
credentials (`schemathesis_digest.py`) and runs its default checks on the answers — no 5xx, only
documented statuses and shapes, schema-valid requests accepted, schema-invalid ones refused, 401
without credentials, and a 405 whose `Allow` names the methods of the path.

The cases reach the routes' logic: each side first gets what a path can name — its key's org, a project,
a spare API key, and a project of its own for DELETE …/groups/{group_id} — and a configuration file pins
those path parameters. With ids drawn at random nearly every case stopped at a 404 before any body was
read: ten operations that disagreed with the document, and a 500, passed unseen at 30 examples.

It runs as schemathesis's own command line, once: a pytest-parametrized run would generate every
operation's cases again in each test worker at collection time. The suite runs it at
`EXAMPLES_PER_OPERATION`; `make fuzz` runs the full pass (`python -m tests.test_openapi_fuzz`, 30 examples).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from livemigrate.cloud_manager.inventory_routes import HostRequest
from tests.schemathesis_digest import VALID_REQUEST_REFUSALS
from tests.support import LOOPBACK_TLS, SOURCE, TARGET, OrgCredentials, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_PER_OPERATION = 6  # with the coverage phase's boundary cases; 20 cost 14 s more of CPU than 10, 30 more again
FULL_PASS_EXAMPLES = 30  # `make fuzz`
# Registering a host probes it before answering, up to 3 s when nothing answers; the coverage phase sends
# some sixty such bodies whatever the examples. The suite's pass sends them to a project that does not
# exist (404, before the body is read); the full pass reaches it.
SLOW_IN_THE_SUITE = ("POST /api/public/v1.0/groups/{group_id}/hosts",)
UNKNOWN_PROJECT = "0" * 24
POSITIVE_DATA_ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis's default


@dataclass(frozen=True)
class FuzzRun:
    returncode: int
    output: str
    document: dict[str, Any]
    """The document the server served."""

    @property
    def operations(self) -> int:
        return sum(len(methods) for methods in self.document["paths"].values())

    @property
    def tested(self) -> int | None:
        found = re.search(r"Tested: (\d+)", self.output)
        return int(found[1]) if found else None


@dataclass(frozen=True)
class SideIds:
    """What a side's path parameters are pinned to: things its fuzzing key may read, change and delete."""

    org_id: str
    group_id: str
    spare_group_id: str  # DELETE …/groups/{group_id} deletes this one, never the project the others use
    key_id: str  # a spare key: DELETE …/apiKeys/{key_id} never deletes the fuzzing key


def _seed(server: ServerProcess, prefix: str, owner: OrgCredentials) -> SideIds:
    with server.client(owner) as client:
        keys = client.get(f"{prefix}/orgs/{owner.org_id}/apiKeys").json()["results"]
        own_key = next(key["id"] for key in keys if key["publicKey"] == owner.public_key)
        # A fuzzed PATCH …/settings may require an access list of every key: the fuzzing key has one.
        client.post(f"{prefix}/orgs/{owner.org_id}/apiKeys/{own_key}/accessList",
                    json=[{"ipAddress": "127.0.0.1"}]).raise_for_status()
        projects = [client.post(f"{prefix}/groups", json={"name": name, "orgId": owner.org_id})
                    for name in ("fuzzed", "deleted by the fuzzer")]
        spare_key = client.post(f"{prefix}/orgs/{owner.org_id}/apiKeys",
                                json={"desc": "fuzzed", "roles": ["ORG_MEMBER"]})
    for response in (*projects, spare_key):
        response.raise_for_status()
    return SideIds(owner.org_id, projects[0].json()["id"], projects[1].json()["id"], spare_key.json()["id"])


def _toml(value: object) -> str:
    """A TOML value: JSON's strings and arrays are TOML's; an inline table from a dict."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + " }"
    return json.dumps(value)


def configuration(sides: dict[str, SideIds], *, in_the_suite: bool) -> str:
    """schemathesis.toml for one run: the first `[[operations]]` block that sets an option decides it."""
    blocks: list[dict[str, object]] = []
    for operation in VALID_REQUEST_REFUSALS:  # each such 400 is held to its own code by the hooks' check
        blocks.append({"include-name": operation,
                       "checks.positive_data_acceptance.expected-statuses": [*POSITIVE_DATA_ACCEPTED, "400"]})
    if in_the_suite:
        blocks += [{"include-name": operation, "parameters": {"group_id": UNKNOWN_PROJECT}}
                   for operation in SLOW_IN_THE_SUITE]
    for prefix, ids in ((SOURCE, sides["source"]), (TARGET, sides["target"])):
        blocks.append({"include-name": f"DELETE {prefix}/groups/{{group_id}}",
                       "parameters": {"group_id": ids.spare_group_id}})
        blocks.append({"include-path-regex": f"^{re.escape(prefix)}/",
                       "parameters": {"org_id": ids.org_id, "group_id": ids.group_id, "key_id": ids.key_id}})
    lines = ["# Written by tests/test_openapi_fuzz.py for one run."]
    for block in blocks:
        lines.append("\n[[operations]]")
        lines += [f"{key} = {_toml(value)}" for key, value in block.items()]
    return "\n".join(lines) + "\n"


def fuzz(directory: Path, examples_per_operation: int, *, in_the_suite: bool) -> FuzzRun:
    """Start a server in `directory`, seed both sides, run schemathesis against it; its output is kept
    in `directory/schemathesis.txt`."""
    server = ServerProcess(directory / "server", sync_seconds=5.0)
    source = server.admin_create_org("source", "fuzz source")
    target = server.admin_create_org("target", "fuzz target")
    server.start()
    try:
        document = httpx.get(f"{server.base_url}/openapi.json", verify=LOOPBACK_TLS).json()
        sides = {"source": _seed(server, SOURCE, source), "target": _seed(server, TARGET, target)}
        config = directory / "schemathesis.toml"
        config.write_text(configuration(sides, in_the_suite=in_the_suite))
        environment = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.schemathesis_digest",
                       "LIVEMIGRATE_FUZZ_BASE_URL": server.base_url,
                       "LIVEMIGRATE_FUZZ_SOURCE_KEY": f"{source.public_key}:{source.private_key}",
                       "LIVEMIGRATE_FUZZ_TARGET_KEY": f"{target.public_key}:{target.private_key}"}
        run = subprocess.run(
            [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
             f"{server.base_url}/openapi.json",
             "--phases", "examples,coverage,fuzzing", "--max-examples", str(examples_per_operation),
             "--workers", "1", "--no-color",
             # No example database: a CI run starts from nothing anyway, and keeping one made Hypothesis
             # shrink and re-run its Pareto front of examples, a sixth of the client's CPU (py-spy).
             "--generation-database", "none"],
            env=environment, cwd=directory, capture_output=True, text=True, timeout=1200, check=False)
    finally:
        server.stop()
    (directory / "schemathesis.txt").write_text(run.stdout + run.stderr)
    return FuzzRun(run.returncode, run.stdout + run.stderr, document)


def test_schemathesis_finds_no_difference_between_the_document_and_the_server(tmp_path: Path) -> None:
    run = fuzz(tmp_path, EXAMPLES_PER_OPERATION, in_the_suite=True)
    assert run.returncode == 0, run.output[-8000:]
    assert run.tested == run.operations > 50  # every operation of both sides
    # Authentication is the digest scheme's alone: an operation that declared `Authorization` as a header
    # of its own would have fuzzers drop it as an invalid value and digest clients put it back.
    declared = [f"{method.upper()} {path}" for path, methods in run.document["paths"].items()
                for method, operation in methods.items() for parameter in operation.get("parameters", [])
                if parameter["in"] == "header" and parameter["name"].lower() == "authorization"]
    assert declared == []
    assert all(operation.get("security") == [{"digest": []}] for path, methods in run.document["paths"].items()
               if path.startswith(("/api/public/v1.0/", "/api/atlas/v2/")) for operation in methods.values())


def test_what_the_full_pass_found_stays_fixed(server: ServerProcess, target_org: OrgCredentials) -> None:
    """The disagreements the 30-example pass found once its cases reached the routes, each asserted here
    without a fuzzer: some of them the suite's 6 examples draw only now and then."""
    organization = f"{TARGET}/orgs/{target_org.org_id}"
    with server.client(target_org) as client:
        # One block named twice, or in two notations, was two rows of one primary key: 500.
        token = client.post(f"{organization}/liveMigrations/linkTokens",
                            json={"accessListIps": ["250.250.250.250", "250.250.250.250", "10.0.0.1/8", "10.0.0.0/8"]})
        assert token.status_code == 200, token.text
        # `validate` is no migration's id: GET and DELETE reached …/liveMigrations/{migration_id} (404).
        project = client.post(f"{TARGET}/groups", json={"name": "validate", "orgId": target_org.org_id}).json()["id"]
        for method in ("GET", "DELETE"):
            answer = client.request(method, f"{TARGET}/groups/{project}/liveMigrations/validate")
            assert (answer.status_code, answer.headers.get("allow")) == (405, "POST"), answer.text
        # An entry naming both ipAddress and cidrBlock was taken as its cidrBlock, its ipAddress unread.
        key = client.get(f"{organization}/apiKeys").json()["results"][0]["id"]
        both = client.post(f"{organization}/apiKeys/{key}/accessList",
                           json=[{"ipAddress": "203.0.113.7", "cidrBlock": "198.51.100.0/24"}])
        assert (both.status_code, both.json()["errorCode"]) == (400, "INVALID_ATTRIBUTE"), both.text
        document = client.get("/openapi.json").json()
    # What the server refuses, the document states: an entry's notation, a shard key's item, the drop flags.
    entry = document["paths"][f"{TARGET}/orgs/{{org_id}}/apiKeys/{{key_id}}/accessList/{{ip_or_cidr}}"]["delete"]
    (pattern,) = [parameter["schema"]["pattern"] for parameter in entry["parameters"]
                  if parameter["name"] == "ip_or_cidr"]
    assert re.search(pattern, "2001:db8::/32") and not re.search(pattern, "0")
    migration = document["paths"][f"{TARGET}/groups/{{group_id}}/liveMigrations"]["post"]
    request = migration["requestBody"]["content"]["application/json"]["schema"]
    key_item = document["components"]["schemas"]["ShardKeyField"]
    assert key_item["additionalProperties"] == {"enum": [1, "hashed"]} and key_item["maxProperties"] == 1
    assert "not" in request
    # JSON has one number type: a port of 27017.0 is the integer the document asks for.
    assert HostRequest.model_validate({"hostname": "db.example", "port": 27017.0}).port == 27017


def main() -> int:
    parser = argparse.ArgumentParser(description="schemathesis against both sides of a fresh server (`make fuzz`).")
    parser.add_argument("--examples", type=int, default=FULL_PASS_EXAMPLES, help="examples per operation")
    parser.add_argument("--directory", type=Path, help="where the server's files and the output stay "
                                                       "(default: a temporary directory, removed)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="livemigrate-fuzz-") as temporary:
        directory = arguments.directory or Path(temporary)
        directory.mkdir(parents=True, exist_ok=True)
        run = fuzz(directory, arguments.examples, in_the_suite=False)
    print(run.output)
    tested = run.tested
    print(f"{tested} of {run.operations} operations tested at {arguments.examples} examples each: "
          f"{'no failure' if run.returncode == 0 else 'FAILED'}")
    return 0 if run.returncode == 0 and tested == run.operations else 1


if __name__ == "__main__":
    sys.exit(main())
