"""The Atlas Administration API's published types for the live-migration operations, written out as
JSON Schema from Atlas' documentation (LiveMigrationResponse, LiveImportValidation,
LiveImportAvailableProject and its AvailableClustersDeployment, the link-token), so that a test can hold
livemigrate's answers to them: MongoDB's Atlas SDK decodes these answers into Go structs, and a float
where Atlas says int64, or a null where it says string, fails there.

Only Atlas' fields are constrained: livemigrate's own extensions beside them are allowed (Atlas'
clients ignore fields they do not know).
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

OBJECT_ID = {"type": "string", "pattern": "^([a-f0-9]{24})$"}

LIVE_MIGRATION = {
    "type": "object",
    "required": ["_id", "status", "readyForCutover", "migrationHosts"],
    "properties": {
        "_id": OBJECT_ID,
        "lagTimeSeconds": {"type": ["integer", "null"]},  # int64
        "migrationHosts": {"type": "array", "items": {"type": "string"}},
        "readyForCutover": {"type": "boolean"},
        "status": {"enum": ["NEW", "WORKING", "FAILED", "COMPLETE", "EXPIRED"]},
    },
}

VALIDATION = {
    "type": "object",
    "required": ["_id", "groupId", "sourceGroupId", "status"],
    "properties": {
        "_id": OBJECT_ID,
        "groupId": OBJECT_ID,
        "sourceGroupId": OBJECT_ID,
        "status": {"enum": ["PENDING", "SUCCESS", "FAILED", None]},
        "errorMessage": {"type": ["string", "null"]},
    },
}

DEPLOYMENT = {
    "type": "object",
    "required": ["featureCompatibilityVersion", "managed", "mongoDBVersion", "name", "sharded", "tlsEnabled"],
    "properties": {
        "agentVersion": {"type": "string"},
        "clusterId": OBJECT_ID,
        "dbSizeBytes": {"type": "integer"},  # int64
        "featureCompatibilityVersion": {"type": "string"},
        "managed": {"type": "boolean"},
        "mongoDBVersion": {"type": "string"},
        "name": {"type": "string"},
        "oplogSizeMB": {"type": "integer"},  # int32
        "sharded": {"type": "boolean"},
        "shardsSize": {"type": "integer"},  # int32
        "tlsEnabled": {"type": "boolean"},
    },
}

AVAILABLE_PROJECTS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["deployments", "migrationHosts", "name", "projectId"],
        "properties": {
            "deployments": {"type": "array", "items": DEPLOYMENT},
            "migrationHosts": {"type": "array", "items": {"type": "string"}},
            "name": {"type": "string", "minLength": 1, "maxLength": 64},
            "projectId": OBJECT_ID,
        },
    },
}

LINK_TOKEN = {"type": "object", "required": ["linkToken"], "properties": {"linkToken": {"type": "string"}}}


def assert_atlas_types(schema: dict[str, Any], answer: Any) -> None:
    """`answer` as Atlas' published types allow it; the error names the field that does not fit."""
    jsonschema_rs.validate(schema, answer)
