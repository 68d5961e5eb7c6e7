"""The tables of both sides. One schema serves the embedded default and split deployments alike.

Secrets are never stored in clear: API keys keep only the digest HA1 values, and the link
credentials a source org keeps for the target are encrypted with the server secret.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from livemigrate.statuses import MigrationStatus, ValidationStatus
from livemigrate.vocabulary import PROGRAMMATIC_PURPOSE


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """SQLite drops tzinfo; this keeps every datetime aware and in UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Organization(Base):
    """An organization of either side: `side` is 'source' (Cloud Manager role) or 'target' (Atlas role)."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    side: Mapped[str] = mapped_column(String(8), index=True)
    name: Mapped[str] = mapped_column(String(255))
    api_access_list_required: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """An API key. `purpose` is 'programmatic', 'link' (a target key behind a link-token) or 'agent'
    (a source project's agent API key, which a migration host authenticates with)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    public_key: Mapped[str] = mapped_column(String(32), unique=True)
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(250), default="")
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    purpose: Mapped[str] = mapped_column(String(16), default=PROGRAMMATIC_PURPOSE)
    # Agent keys ('agent') belong to one project of a source org.
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    access_list: Mapped[list[AccessListEntry]] = relationship(
        back_populates="api_key", cascade="all, delete-orphan", lazy="selectin", order_by="AccessListEntry.cidr_block"
    )


class AccessListEntry(Base):
    """One IP or CIDR block a key may be used from; `ip_address` is set when the block is a single address."""

    __tablename__ = "api_key_access_list"

    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True)
    cidr_block: Mapped[str] = mapped_column(String(64), primary_key=True)
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    api_key: Mapped[ApiKey] = relationship(back_populates="access_list")


class Project(Base):
    """A project (Cloud Manager/Atlas 'group') of an organization of either side."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LinkToken(Base):
    """Target side: a link-token issued by a target org, and the link key behind it."""

    __tablename__ = "link_tokens"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"), unique=True)
    access_list_ips: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class TargetLink(Base):
    """Target side: a source org linked to a target org, with the inventory it last pushed."""

    __tablename__ = "target_links"
    __table_args__ = (UniqueConstraint("target_org_id", "source_org_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    source_org_id: Mapped[str] = mapped_column(String(24))
    link_token_id: Mapped[str] = mapped_column(ForeignKey("link_tokens.id", ondelete="CASCADE"), index=True)
    inventory: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_synced_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SourceLink(Base):
    """Source side: this org's link to a target org. The link key's private key is kept encrypted."""

    __tablename__ = "source_links"

    source_org_id: Mapped[str] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    target_org_id: Mapped[str] = mapped_column(String(24))
    target_base_url: Mapped[str] = mapped_column(Text)
    link_public_key: Mapped[str] = mapped_column(String(32))
    link_private_key_encrypted: Mapped[str] = mapped_column(Text)
    token_fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    last_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_sync_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SourceHost(Base):
    """Source side: a monitored MongoDB host of a project, its encrypted credentials and what the
    last probe of it found (`cluster_name` groups the hosts of one deployment)."""

    __tablename__ = "source_hosts"
    __table_args__ = (UniqueConstraint("project_id", "hostname", "port"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    password_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    auth_mechanism: Mapped[str] = mapped_column(String(32), default="NONE")
    ssl_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    cluster_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    replica_set_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    feature_compatibility_version: Mapped[str | None] = mapped_column(String(32), nullable=True)
    sharded: Mapped[bool] = mapped_column(Boolean, default=False)
    data_size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    oplog_size_mb: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_ping_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class MigrationHost(Base):
    """Source side: a machine running `livemigrate agent` for a project, known by its heartbeats."""

    __tablename__ = "migration_hosts"
    __table_args__ = (UniqueConstraint("project_id", "hostname"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    hostname: Mapped[str] = mapped_column(String(255))
    agent_version: Mapped[str] = mapped_column(String(64), default="")
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class TargetCluster(Base):
    """Target side: an existing MongoDB deployment registered to a project by connection string
    (kept encrypted: it usually carries a password)."""

    __tablename__ = "target_clusters"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    uri_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LiveMigration(Base):
    """Target side: a push live migration of a source deployment into a target cluster, and the
    progress its migration host last reported."""

    __tablename__ = "live_migrations"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    target_org_id: Mapped[str] = mapped_column(String(24), index=True)
    source_org_id: Mapped[str] = mapped_column(String(24), index=True)
    source_project_id: Mapped[str] = mapped_column(String(24))
    source_cluster_name: Mapped[str] = mapped_column(String(255))
    source_username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_password_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_ssl: Mapped[bool] = mapped_column(Boolean, default=False)
    # A file on the migration host: the CA that signed the source's TLS certificates.
    source_ca_certificate_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    destination_cluster_name: Mapped[str] = mapped_column(String(64))
    hostname_schema_type: Mapped[str] = mapped_column(String(16), default="PUBLIC")
    migration_host: Mapped[str] = mapped_column(String(255))  # the first listed
    # All of them, when more than one shares the copy (None: a record of a single host's migration).
    migration_hosts: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    drop_destination_data: Mapped[bool] = mapped_column(Boolean, default=False)
    sharding: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # Atlas' `sharding`, as asked
    # Whether the migration may stop a sharded source's balancer while it runs (our extension).
    stop_source_balancer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A way back (our extension): whether it may be reversed; once complete, where its reverse starts (the
    # destination's resume points, extended JSON, from its host); a reverse's direction and forward migration.
    reversible: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reverse_point: Mapped[str | None] = mapped_column(Text, nullable=True)
    direction: Mapped[str] = mapped_column(String(8), default="FORWARD", server_default="FORWARD")
    reverse_of: Mapped[str | None] = mapped_column(String(24), nullable=True, index=True)
    # The change capture its hosts run (AUTO, DEPLOYMENT, COLLECTION); None: each host's own setting.
    change_capture: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # `project/cluster` while the migration may write its destination, None once it no longer can:
    # unique, so that two migrations never hold one destination, however their requests race.
    destination_claim: Mapped[str | None] = mapped_column(String(100), nullable=True, unique=True, index=True)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cancelled_by: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the key that cancelled it
    # When its hosts said they had stopped writing and removed the job's state (a cancel's confirmation).
    hosts_stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=MigrationStatus.NEW.value)
    phase: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lag_time_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    ready_for_cutover: Mapped[bool] = mapped_column(Boolean, default=False)
    ready_since: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    cutover_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    copied_documents: Mapped[int] = mapped_column(Integer, default=0)
    total_documents: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


def hosts_of(migration: LiveMigration) -> list[str]:
    """The migration hosts a migration lists, first to last."""
    return list(migration.migration_hosts or [migration.migration_host])


class LiveMigrationValidation(Base):
    """Target side: a validation of a migration request; PENDING until the checks have run, the last
    of them the migration host's pre-flight of the source. What the host needs to read the source is
    kept until it has answered (the password sealed, as a migration's), then forgotten."""

    __tablename__ = "live_migration_validations"

    id: Mapped[str] = mapped_column(String(24), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    source_project_id: Mapped[str] = mapped_column(String(24))
    status: Mapped[str] = mapped_column(String(16), default=ValidationStatus.PENDING.value)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set once the target's own checks passed: the pre-flight is then a job of the migration host.
    host_asked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    target_org_id: Mapped[str | None] = mapped_column(String(24), nullable=True)
    source_org_id: Mapped[str | None] = mapped_column(String(24), nullable=True, index=True)
    source_cluster_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_username: Mapped[str | None] = mapped_column(String(255), nullable=True)
    source_password_encrypted: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_ssl: Mapped[bool] = mapped_column(Boolean, default=False)
    source_ca_certificate_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    destination_cluster_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    migration_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    drop_destination_data: Mapped[bool] = mapped_column(Boolean, default=False)
    sharding: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # its pre-flight checks it
    stop_source_balancer: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reversible: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    preflight: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # the host's answer
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DigestNonceCount(Base):
    """A digest nonce count already used: replicas share them, so a request replayed at another replica
    is refused too. Kept until the nonce expires."""

    __tablename__ = "digest_nonce_counts"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    nonce_count: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class Lease(Base):
    """Which replica runs a background loop (`store/leases.py`), until when unless it renews."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class JobLease(Base):
    """Source side: a part of a shared migration (a copy range, the change capture) held by one of its
    migration hosts until `expires_at` unless renewed (`cloud_manager/job_leases.py`)."""

    __tablename__ = "job_leases"

    job_id: Mapped[str] = mapped_column(String(24), primary_key=True)
    name: Mapped[str] = mapped_column(String(512), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsoleSession(Base):
    """A signed-in browser of the web console (`console/sessions.py`). Only the token's SHA-256 is kept:
    the store alone cannot sign anyone in. In the store, so that every replica knows every session and
    signing out anywhere ends it everywhere."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    public_key: Mapped[str] = mapped_column(String(32), index=True)  # the API key that signed in
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
