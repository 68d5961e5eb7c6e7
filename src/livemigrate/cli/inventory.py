"""`livemigrate source projects|hosts|clusters|migration-hosts|agent-keys …` and `livemigrate target
projects|clusters|available-projects …`: what a migration is made of, Atlas CLI style."""

from __future__ import annotations

from typing import Any

import typer

from livemigrate.cli.connection import BASE_URL, PRIVATE_KEY, PUBLIC_KEY, client
from livemigrate.cli.output import OUTPUT_OPTION, OutputFormat, api_errors, console, emit
from livemigrate.cli.tables import print_fields, print_table

source_hosts = typer.Typer(help="Monitored MongoDB hosts of a source project.", no_args_is_help=True)
source_clusters = typer.Typer(help="Deployments of a source project, as its hosts report them.", no_args_is_help=True)
source_migration_hosts = typer.Typer(help="Migration hosts of a source project.", no_args_is_help=True)
target_available_projects = typer.Typer(help="What linked source organizations offer to migrate.",
                                        no_args_is_help=True)
source_agent_keys = typer.Typer(help="Agent API keys of a source project.", no_args_is_help=True)
target_clusters = typer.Typer(help="Destination clusters of a target project.", no_args_is_help=True)
source_projects = typer.Typer(help="Projects of a source organization.", no_args_is_help=True)
target_projects = typer.Typer(help="Projects of a target organization.", no_args_is_help=True)

GROUP = typer.Option(..., "--group", help="Project (group) id.")


def _create_project(side: str, org: str, name: str, output: OutputFormat, base_url: str, public_key: str,
                    private_key: str) -> None:
    with api_errors(), client(base_url, public_key, private_key) as api:
        project = api.create_project(side, org, name)
    emit(output, project, lambda: print_fields(project, ["id", "name", "orgId"]))


@source_projects.command("create")
def source_project_create(org: str = typer.Option(..., "--org"), name: str = typer.Option(..., "--name"),
                          output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                          public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Create a project in a source organization."""
    _create_project("source", org, name, output, base_url, public_key, private_key)


@target_projects.command("create")
def target_project_create(org: str = typer.Option(..., "--org"), name: str = typer.Option(..., "--name"),
                          output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                          public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Create a project in a target organization."""
    _create_project("target", org, name, output, base_url, public_key, private_key)


def _list_projects(side: str, org: str | None, output: OutputFormat, base_url: str, public_key: str,
                   private_key: str) -> None:
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = [project for project in api.list_projects(side) if org is None or project["orgId"] == org]
    emit(output, found, lambda: print_table(found, [("ID", "id"), ("NAME", "name"), ("ORG", "orgId")]))


@source_projects.command("list")
def source_projects_list(org: str | None = typer.Option(None, "--org", help="Only this org's projects."),
                         output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                         public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Projects of the source organizations the key belongs to."""
    _list_projects("source", org, output, base_url, public_key, private_key)


@target_projects.command("list")
def target_projects_list(org: str | None = typer.Option(None, "--org", help="Only this org's projects."),
                         output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                         public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Projects of the target organizations the key belongs to."""
    _list_projects("target", org, output, base_url, public_key, private_key)


@source_clusters.command("list")
def source_clusters_list(group: str = GROUP, output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                         public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Deployments of the project as its hosts report them: the NAME is what `--source-cluster` takes."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.list_source_clusters(group)
    emit(output, found, lambda: print_table(found, [("NAME", "clusterName"), ("TYPE", "typeName"),
                                               ("VERSION", "mongoDBVersion"), ("HOSTS", "hosts")]))


@source_migration_hosts.command("list")
def migration_hosts_list(group: str = GROUP, output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                         public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Migration hosts of the project (`livemigrate agent`, or the one `serve` runs) and whether they are alive."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.list_migration_hosts(group)
    emit(output, found, lambda: print_table(found, [("HOSTNAME", "hostname"), ("ALIVE", "alive"),
                                               ("LAST HEARTBEAT", "lastHeartbeat"), ("VERSION", "agentVersion")]))


@target_available_projects.command("list")
def available_projects_list(org: str = typer.Option(..., "--org", help="The target organization."),
                            output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                            public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """What the linked source organizations offer to migrate: projects, their deployments, live migration hosts."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.available_projects(org)
    rows = [{"projectId": project["projectId"], "name": project.get("name"),
             "deployments": ", ".join(deployment["name"] for deployment in project.get("deployments", [])),
             "migrationHosts": ", ".join(project.get("migrationHosts", []))} for project in found]
    emit(output, found, lambda: print_table(rows, [("SOURCE PROJECT", "projectId"), ("NAME", "name"),
                                              ("DEPLOYMENTS", "deployments"), ("MIGRATION HOSTS", "migrationHosts")]))


@source_hosts.command("add")
def hosts_add(group: str = GROUP, hostname: str = typer.Option(..., "--hostname"),
              port: int = typer.Option(27017, "--port"), username: str | None = typer.Option(None, "--username"),
              password: str | None = typer.Option(None, "--password", envvar="LIVEMIGRATE_HOST_PASSWORD"),
              auth_mechanism: str = typer.Option("NONE", "--auth-mechanism",
                                                 help="NONE, SCRAM-SHA-1, SCRAM-SHA-256 or DEFAULT."),
              ssl: bool = typer.Option(False, "--ssl"), output: OutputFormat = OUTPUT_OPTION,
              base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Monitor a MongoDB host; the source side probes it at once (credentials are never shown again)."""
    body: dict[str, Any] = {"hostname": hostname, "port": port, "authMechanismName": auth_mechanism, "sslEnabled": ssl}
    if username:
        body.update(username=username, password=password)
    with api_errors(), client(base_url, public_key, private_key) as api:
        host = api.add_host(group, body)
    emit(output, host, lambda: print_fields(host, ["id", "hostname", "port", "clusterName", "version", "lastPing",
                                              "lastError"]))


@source_hosts.command("list")
def hosts_list(group: str = GROUP, output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
               public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Monitored hosts, with what the last probe found (or why it failed)."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.list_hosts(group)
    emit(output, found, lambda: print_table(found, [("ID", "id"), ("HOST", "hostname"), ("PORT", "port"),
                                               ("CLUSTER", "clusterName"), ("VERSION", "version"),
                                               ("LAST PING", "lastPing"), ("LAST ERROR", "lastError")]))


@source_agent_keys.command("create")
def agent_keys_create(group: str = GROUP, desc: str = typer.Option("migration host", "--desc"),
                      output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL, public_key: str = PUBLIC_KEY,
                      private_key: str = PRIVATE_KEY) -> None:
    """Create an agent API key for `livemigrate agent`; it is shown only now."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        key = api.create_agent_key(group, desc)

    def human() -> None:
        console.print("Agent API key created; pass it to `livemigrate agent --agent-key` (shown only now):")
        typer.echo(key["key"])

    emit(output, key, human)


@target_clusters.command("add")
def clusters_add(group: str = GROUP, name: str = typer.Option(..., "--name"),
                 connection_string: str = typer.Option(..., "--connection-string",
                                                       envvar="LIVEMIGRATE_CONNECTION_STRING"),
                 output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL, public_key: str = PUBLIC_KEY,
                 private_key: str = PRIVATE_KEY) -> None:
    """Register an existing deployment as a destination (its connection string is never shown again)."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        cluster = api.add_target_cluster(group, name, connection_string)
    emit(output, cluster, lambda: print_fields(cluster, ["id", "name", "groupId", "created"]))


@target_clusters.command("list")
def clusters_list(group: str = GROUP, output: OutputFormat = OUTPUT_OPTION, base_url: str = BASE_URL,
                  public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY) -> None:
    """Destination clusters of the project."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        found = api.list_target_clusters(group)
    emit(output, found, lambda: print_table(found, [("ID", "id"), ("NAME", "name"), ("CREATED", "created")]))
