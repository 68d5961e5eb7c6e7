"""Target clusters: existing MongoDB deployments registered to a target project by connection string.

The connection string usually carries a password: it is kept encrypted, never returned, and
travels only inside the job payload of the link key that owns a migration into it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from livemigrate.crypto import SecretBox
from livemigrate.engine.errors import redact
from livemigrate.engine.options import SYSTEM_DATABASES
from livemigrate.http.errors import ApiError, ErrorCode
from livemigrate.ids import new_object_id
from livemigrate.store.database import Store
from livemigrate.store.models import TargetCluster

PROBE_TIMEOUT_MS = 3000


class DestinationUnreachable(Exception):
    """The destination did not answer; the message says why, without the URI's password."""


def check_connection_string(uri: str) -> None:
    # pymongo is imported where a cluster is reached, not by every server start (a tenth of a second).
    from pymongo.errors import ConfigurationError, InvalidURI
    from pymongo.uri_parser import parse_uri

    try:
        parse_uri(uri, validate=True)
    except (InvalidURI, ConfigurationError, ValueError) as error:
        raise ApiError(ErrorCode.INVALID_CONNECTION_STRING,
                       f"The connection string is not a valid MongoDB URI: {redact(str(error), uri)}.") from None


def register_cluster(store: Store, secret_box: SecretBox, project_id: str, name: str, uri: str) -> TargetCluster:
    check_connection_string(uri)
    cluster = TargetCluster(id=new_object_id(), project_id=project_id, name=name, uri_encrypted=secret_box.seal(uri))
    try:
        with store.write() as session:
            session.add(cluster)
    except IntegrityError:
        raise ApiError(ErrorCode.DUPLICATE_CLUSTER_NAME, f"A cluster named {name!r} already exists in group "
                                                         f"{project_id}.", [name]) from None
    return cluster


def list_clusters(store: Store, project_id: str) -> list[TargetCluster]:
    with store.read() as session:
        return list(session.scalars(select(TargetCluster).where(TargetCluster.project_id == project_id)
                                    .order_by(TargetCluster.name)))


def find_cluster(store: Store, project_id: str, name: str) -> TargetCluster | None:
    with store.read() as session:
        return session.scalar(select(TargetCluster).where(TargetCluster.project_id == project_id,
                                                          TargetCluster.name == name))


def occupied_namespaces(uri: str) -> list[str]:
    """Namespaces holding documents on the cluster; raises DestinationUnreachable when it cannot be reached."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    from livemigrate.engine.mongo.connect import describe_failure, hosts_of

    try:
        client: MongoClient[Any] = MongoClient(uri, serverSelectionTimeoutMS=PROBE_TIMEOUT_MS,
                                               connectTimeoutMS=PROBE_TIMEOUT_MS, appname="livemigrate-validate")
        with client:
            client.admin.command("ping")
            found = []
            for database in client.list_database_names():
                if database in SYSTEM_DATABASES:
                    continue
                for name in client[database].list_collection_names():
                    if not name.startswith("system.") and client[database][name].find_one({}, {"_id": 1}) is not None:
                        found.append(f"{database}.{name}")
            return found
    except PyMongoError as error:
        raise DestinationUnreachable(redact(describe_failure(error, hosts_of(uri)), uri)[:300]) from None
