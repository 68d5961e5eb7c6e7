"""Monitored hosts of a source project, grouped into the deployments ("clusters") they form.

Credentials are kept encrypted and never returned; a host that cannot be reached stays listed
with its last error rather than being dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from livemigrate.cloud_manager.probe import HostAddress, ProbeResult, probe
from livemigrate.crypto import SecretBox
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import is_object_id, new_object_id
from livemigrate.store.database import Store
from livemigrate.store.models import Project, SourceHost, utcnow


@dataclass(frozen=True)
class Deployment:
    """One deployment of a project as the inventory shows it: its hosts and what they report."""

    cluster_id: str
    name: str
    hosts: tuple[SourceHost, ...]

    @property
    def primary(self) -> SourceHost:
        reachable = [host for host in self.hosts if host.last_error is None and host.last_ping_at is not None]
        return (reachable or list(self.hosts))[0]


def address_of(host: SourceHost, secret_box: SecretBox) -> HostAddress:
    password = secret_box.open(host.password_encrypted) if host.password_encrypted else None
    return HostAddress(host.hostname, host.port, host.username, password, host.auth_mechanism, host.ssl_enabled)


def record_probe(host: SourceHost, result: ProbeResult) -> None:
    if result.reachable:
        host.last_ping_at, host.last_error = utcnow(), None
        host.replica_set_name = result.replica_set_name
        host.cluster_name = result.replica_set_name or f"{host.hostname}:{host.port}"
        host.version = result.version
        host.feature_compatibility_version = result.feature_compatibility_version
        host.sharded = result.sharded
        host.data_size_bytes = result.data_size_bytes
        host.oplog_size_mb = result.oplog_size_mb
    else:
        host.last_error = result.error
        host.cluster_name = host.cluster_name or f"{host.hostname}:{host.port}"


def add_host(store: Store, secret_box: SecretBox, project: Project, address: HostAddress) -> SourceHost:
    """Register a host and probe it once before answering, so the caller sees what it is at once."""
    result = probe(address)
    host = SourceHost(
        id=new_object_id(), project_id=project.id, hostname=address.hostname, port=address.port,
        username=address.username,
        password_encrypted=secret_box.seal(address.password) if address.password else None,
        auth_mechanism=address.auth_mechanism, ssl_enabled=address.ssl_enabled,
    )
    record_probe(host, result)
    try:
        with store.write() as session:
            session.add(host)
    except IntegrityError:
        raise ApiError(ErrorCode.DUPLICATE_HOST, f"Host {address.hostname}:{address.port} is already monitored "
                                                 f"in project {project.id}.", [f"{address.hostname}:{address.port}"]) from None
    return host


def list_hosts(store: Store, project_id: str) -> list[SourceHost]:
    with store.read() as session:
        return list(session.scalars(select(SourceHost).where(SourceHost.project_id == project_id)
                                    .order_by(SourceHost.hostname, SourceHost.port)))


def delete_host(store: Store, project_id: str, host_id: str) -> None:
    if not is_object_id(host_id):
        raise ApiError(ErrorCode.INVALID_HOST_ID, f"An invalid host ID {host_id} was specified.", [host_id])
    with store.write() as session:
        host = session.get(SourceHost, host_id)
        if host is None or host.project_id != project_id:
            raise ApiError(ErrorCode.HOST_NOT_FOUND, f"No host with ID {host_id} exists in group {project_id}.",
                           [host_id])
        session.delete(host)


def deployments(hosts: Sequence[SourceHost]) -> list[Deployment]:
    grouped: dict[str, list[SourceHost]] = {}
    for host in hosts:
        grouped.setdefault(host.cluster_name or f"{host.hostname}:{host.port}", []).append(host)
    return [Deployment(cluster_id(hosts_of[0].project_id, name), name, tuple(hosts_of))
            for name, hosts_of in sorted(grouped.items())]


def cluster_id(project_id: str, cluster_name: str) -> str:
    """A stable 24-hex id for a deployment, derived from its project and name."""
    return hashlib.sha256(f"{project_id}/{cluster_name}".encode()).hexdigest()[:24]


def refresh_hosts(store: Store, secret_box: SecretBox) -> None:
    """Probe every host again and record what it answers."""
    with store.read() as session:
        found = list(session.scalars(select(SourceHost)))
    for host in found:
        record_probe(host, probe(address_of(host, secret_box)))
        with store.write() as session:
            session.merge(host)


def cluster_uri(deployment: Deployment, secret_box: SecretBox, username: str | None, password: str | None,
                ssl: bool, ca_certificate_path: str | None = None) -> str:
    """A connection string to the whole deployment for the migration host; it carries a password, so
    it is handed only to the agent of the project and never logged. The migration request's
    credentials win over the ones registered for monitoring."""
    first = address_of(deployment.primary, secret_box)
    user, secret = (username, password) if username else (first.username, first.password)
    credentials = f"{quote_plus(user)}:{quote_plus(secret or '')}@" if user and (username or
                                                                                 first.auth_mechanism != "NONE") else ""
    members = ",".join(f"{host.hostname}:{host.port}" for host in deployment.hosts)
    options = [f"replicaSet={deployment.primary.replica_set_name}"] if deployment.primary.replica_set_name \
        else ["directConnection=true"]
    if ssl or first.ssl_enabled:
        options.append("tls=true")
        if ca_certificate_path:  # read by the driver on the migration host, where the path is meant
            options.append(f"tlsCAFile={quote_plus(ca_certificate_path)}")
    return f"mongodb://{credentials}{members}/?{'&'.join(options)}"
