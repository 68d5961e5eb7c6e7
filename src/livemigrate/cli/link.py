"""`livemigrate source link …` and `livemigrate target link-token …`: the link, in mongocli's manner."""

from __future__ import annotations

import typer

from livemigrate.cli.connection import BASE_URL, PRIVATE_KEY, PUBLIC_KEY, client
from livemigrate.cli.output import OUTPUT_OPTION, OutputFormat, api_errors, console, emit

source_link = typer.Typer(help="The liveExport migration link of a source organization.", no_args_is_help=True)
target_link_token = typer.Typer(help="Link-tokens of a target organization.", no_args_is_help=True)

ORG = typer.Option(..., "--org", help="Organization id (24 hex digits).")


@target_link_token.command("create")
def create_link_token(
    org: str = ORG,
    access_list_ip: list[str] = typer.Option([], "--access-list-ip", help="IP or CIDR the source side calls from; repeat."),
    output: OutputFormat = OUTPUT_OPTION,
    base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY,
) -> None:
    """Create a link-token to hand to the source organization's owner."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        token = api.create_link_token(org, access_list_ip)
    def human() -> None:
        console.print("Link-token created. Give it to the source organization's owner; it is shown only now:")
        typer.echo(token)

    emit(output, {"linkToken": token}, human)


@target_link_token.command("delete")
def delete_link_tokens(
    org: str = ORG,
    force: bool = typer.Option(False, "--force", help="Do not ask for confirmation."),
    base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY,
) -> None:
    """Revoke every link-token of the organization, their keys and their links."""
    if not force and not typer.confirm(f"Revoke every link-token of organization {org} and the links made with them?"):
        raise typer.Exit(1)
    with api_errors(), client(base_url, public_key, private_key) as api:
        api.revoke_link_tokens(org)
    console.print(f"Link-tokens of organization {org} revoked.")


@source_link.command("create")
def create_link(
    org: str = ORG,
    link_token: str = typer.Option(..., "--link-token", envvar="LIVEMIGRATE_LINK_TOKEN",
                                   help="The link-token from the target organization (env LIVEMIGRATE_LINK_TOKEN)."),
    output: OutputFormat = OUTPUT_OPTION,
    base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY,
) -> None:
    """Connect the source organization to the target that issued the link-token."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        status = api.connect_link(org, link_token)
    emit(output, {"status": status}, lambda: console.print(f"Organization {org} linked: {status}"))


@source_link.command("describe")
def describe_link(
    org: str = ORG,
    output: OutputFormat = OUTPUT_OPTION,
    base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY,
) -> None:
    """Show the link: status, target, last successful push and the last error."""
    with api_errors(), client(base_url, public_key, private_key) as api:
        link = api.describe_link(org)

    def human() -> None:
        for label, key in (("STATUS", "status"), ("TARGET ORG", "targetOrgId"), ("TARGET URL", "targetBaseUrl"),
                           ("LINKED AT", "linkedAt"), ("LAST SYNCED AT", "lastSyncedAt"),
                           ("LAST ERROR", "lastSyncError")):
            typer.echo(f"{label:<15} {link.get(key) or '-'}")  # one line each, never wrapped

    emit(output, link, human)


@source_link.command("delete")
def delete_link(
    org: str = ORG,
    force: bool = typer.Option(False, "--force", help="Do not ask for confirmation."),
    base_url: str = BASE_URL, public_key: str = PUBLIC_KEY, private_key: str = PRIVATE_KEY,
) -> None:
    """Remove the organization's link; it stops synchronizing with the target."""
    if not force and not typer.confirm(f"Delete the migration link of organization {org}?"):
        raise typer.Exit(1)
    with api_errors(), client(base_url, public_key, private_key) as api:
        api.delete_link(org)
    console.print(f"Migration link of organization {org} deleted.")
