"""Process-wide settings, read once from `LIVEMIGRATE_*` environment variables (or `.env`).

Every tunable the README lists lives here so that the server, the CLI and the tests agree on
names and defaults.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STATE_DIR = Path(".livemigrate")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LIVEMIGRATE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_STATE_DIR / 'livemigrate.db'}",
        description="SQLAlchemy URL of the store: SQLite by default, postgresql+psycopg://… in production.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Secret that encrypts stored link credentials and signs digest nonces. "
        "When unset, one is generated and kept in secret_key_file.",
    )
    secret_key_file: Path = DEFAULT_STATE_DIR / "secret.key"
    link_sync_seconds: float = Field(default=60.0, gt=0, description="Interval of the background inventory push.")
    host_probe_seconds: float = Field(default=60.0, gt=0, description="Interval at which monitored hosts are probed.")
    migration_host_alive_seconds: float = Field(
        default=120.0, gt=0, description="A migration host without a heartbeat for this long is not alive.")
    migration_lease_seconds: float = Field(
        default=15.0, gt=0, description="A part of a shared migration (a copy range, the change capture) is its "
        "holder's this long after its last renewal; then another of the migration's hosts may take it.")
    migration_hosts_gone_seconds: float = Field(
        default=900.0, gt=0, description="A running migration none of whose migration hosts has been alive for "
        "this long (as the link's inventory says) becomes FAILED.")
    cutover_window_hours: float = Field(
        default=120.0, gt=0, description="A migration ready for cutover this long without one becomes EXPIRED.")
    agent_retries: int = Field(default=5, ge=0, description="Retries of a job whose source or target cannot be reached.")
    agent_retry_seconds: float = Field(default=2.0, gt=0, description="First wait between retries; doubled each time.")
    agent_ready_lag_seconds: float = Field(default=5.0, gt=0, description="Lag under which a job is readyForCutover.")
    agent_capture: str = Field(default="auto", description="Change capture of the agent's jobs: auto, cluster, collection.")
    agent_count_check_seconds: float = Field(
        default=10.0, gt=0, description="While replicating, both sides' counts are compared this often.")
    agent_verify_sample: int = Field(
        default=100, ge=0, description="Documents read on both sides and compared at cutover, besides the counts.")
    agent_exact_counts: bool = Field(
        default=False, description="Count every document (a scan) instead of asking for each collection's count.")
    agent_spool_limit_mb: int = Field(
        default=10 * 1024, ge=1, description="Disk the changes read during a copy may take before they are applied.")
    agent_fault_limit_seconds: float = Field(
        default=300.0, gt=0, description="How long a fault on a job's source or destination (unreachable, no reply, "
        "an election) may last before the job ends; shorter ones are ridden out.")
    agent_socket_timeout_seconds: float = Field(
        default=120.0, gt=0, description="A reply of the source or destination not come after this long counts as "
        "a fault (index builds wait as long as they take).")
    agent_processes: int | None = Field(
        default=None, ge=1, description="Worker processes for each job's copy; unset: one per core for a large copy.")
    link_push_timeout_seconds: float = Field(default=10.0, gt=0)
    digest_nonce_seconds: float = Field(default=300.0, gt=0, description="Lifetime of a digest nonce.")
    read_cache_seconds: float = Field(
        default=2.0, ge=0,
        description="How long a hot read (API key, org, link status) may be reused; writes in this "
        "process invalidate at once, so this bounds only changes made by other processes.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL of the target API written into link-tokens; defaults to the URL the "
        "token request arrived on.",
    )
    console_session_hours: float = Field(default=8.0, gt=0,
                                         description="How long a web console sign-in lasts (it ends sooner on sign-out).")
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field(default="text", description="text, or json for a log shipper.")


def load_secret_key(settings: Settings) -> bytes:
    """Return the server secret, creating the key file (mode 0600) on first use."""
    if settings.secret_key:
        return settings.secret_key.encode()
    path = settings.secret_key_file
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
