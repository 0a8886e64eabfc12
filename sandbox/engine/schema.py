"""Which input changes the AWS provider updates in place and which force a new resource.

pulumi-aws 7.x is bridged from terraform-provider-aws, so a change replaces a resource exactly when
the changed attribute is `ForceNew` in that provider's schema. This module is the one place that
table lives; each entry cites the file and field it comes from (hashicorp/terraform-provider-aws).
Other resource modules add their types with `register_schema`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STREAM = "aws:kinesis/stream:Stream"
ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"


@dataclass(frozen=True)
class TypeSchema:
    """One resource type: its ForceNew inputs, its in-place inputs and its auto-named property."""

    token: str
    force_new: frozenset[str]
    in_place: frozenset[str]
    # The property Pulumi auto-names when the program leaves it unset (None: no auto-naming).
    name_property: str | None = "name"
    # Inputs holding IAM policy JSON: compared as documents, as the provider's
    # SuppressEquivalentPolicyDiffs does, not as text.
    policy_documents: frozenset[str] = frozenset()
    # What an unset input means to the provider (its schema `Default`), so unset == default.
    defaults: Mapping[str, Any] | None = None


SCHEMAS: dict[str, TypeSchema] = {}


def register_schema(schema: TypeSchema) -> None:
    """Add a resource type's update-vs-replace table (other resource modules call this)."""
    SCHEMAS[schema.token] = schema


register_schema(
    TypeSchema(
        STREAM,
        # internal/service/kinesis/stream.go, resourceStream().Schema: `name` is the only
        # ForceNew attribute (Required, ForceNew: true).
        force_new=frozenset({"name"}),
        # stream.go resourceStreamUpdate: stream_mode_details.0.stream_mode -> UpdateStreamMode;
        # shard_count -> UpdateShardCount (UNIFORM_SCALING); retention_period ->
        # Increase/DecreaseStreamRetentionPeriod; encryption_type/kms_key_id ->
        # Start/StopStreamEncryption; tags (tags_all) -> AddTagsToStream/RemoveTagsFromStream.
        in_place=frozenset(
            {
                "streamModeDetails",
                "shardCount",
                "retentionPeriod",
                "encryptionType",
                "kmsKeyId",
                "tags",
            }
        ),
        # stream.go: retention_period Default 24, encryption_type Default NONE.
        defaults={"retentionPeriod": 24, "encryptionType": "NONE"},
    )
)
register_schema(
    TypeSchema(
        ROLE,
        # internal/service/iam/role.go, ResourceRole().Schema: `name` (ForceNew),
        # `name_prefix` (ForceNew) and `path` (Default "/", ForceNew).
        force_new=frozenset({"name", "namePrefix", "path"}),
        # role.go resourceRoleUpdate: assume_role_policy -> UpdateAssumeRolePolicy;
        # description and max_session_duration -> UpdateRole; permissions_boundary ->
        # PutRolePermissionsBoundary / DeleteRolePermissionsBoundary; tags_all -> TagRole/UntagRole.
        in_place=frozenset(
            {
                "assumeRolePolicy",
                "description",
                "maxSessionDuration",
                "permissionsBoundary",
                "tags",
            }
        ),
        policy_documents=frozenset({"assumeRolePolicy"}),
        # role.go: max_session_duration Default 3600, path Default "/".
        defaults={"maxSessionDuration": 3600, "path": "/"},
    )
)
register_schema(
    TypeSchema(
        POLICY,
        # internal/service/iam/policy.go, resourcePolicy().Schema: `description`, `name`,
        # `name_prefix` and `path` are all ForceNew.
        force_new=frozenset({"description", "name", "namePrefix", "path"}),
        # policy.go resourcePolicyUpdate: `policy` -> policyPruneVersions (delete the oldest
        # non-default version once 5 exist) + CreatePolicyVersion + SetDefaultPolicyVersion;
        # tags -> TagPolicy/UntagPolicy.
        in_place=frozenset({"policy", "tags"}),
        policy_documents=frozenset({"policy"}),
        defaults={"path": "/"},
    )
)
register_schema(
    TypeSchema(
        ATTACHMENT,
        # internal/service/iam/role_policy_attachment.go: `role` and `policy_arn` are both
        # Required + ForceNew, and the resource has no Update at all.
        force_new=frozenset({"role", "policyArn"}),
        in_place=frozenset(),
        name_property=None,
    )
)


@dataclass(frozen=True)
class InputDiff:
    """Which inputs differ, and which of those force a replacement."""

    diff_reasons: tuple[str, ...]
    replace_reasons: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when any input differs."""
        return bool(self.diff_reasons)


def _statements(document: Any, in_list: bool = False) -> Any:
    """A policy document with every string-or-list field as a sorted list, for comparison."""
    if isinstance(document, dict):
        return {k: _statements(v) for k, v in document.items()}
    if isinstance(document, list):
        items = [_statements(v, in_list=True) for v in document]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(document, str) and not in_list:
        return [document]
    return document


def normalized_document(value: Any) -> Any:
    """Parse a policy document (text or dict); equivalent documents normalize equal."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return value
    if not isinstance(value, dict):
        return value
    plain = {k: v for k, v in value.items() if k != "Statement"}
    plain["Statement"] = _statements(value.get("Statement", []))
    return plain


def _comparable(schema: TypeSchema, key: str, value: Any) -> Any:
    if value is None or value == {} or value == "":
        value = (schema.defaults or {}).get(key)
    if key in schema.policy_documents and value is not None:
        return normalized_document(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def with_provider_defaults(token: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """`inputs` with every unset input the provider defaults filled in, as it sends them.

    terraform-provider-aws reads a schema `Default` for every attribute the configuration leaves
    unset and sends it on create (`pulumi up` therefore creates what the defaults say, not what
    the AWS API would pick by itself); the local engine does the same.
    """
    defaults = schema_for(token).defaults or {}
    filled = dict(inputs)
    for key, value in defaults.items():
        if filled.get(key) is None:
            filled[key] = value
    return filled


def schema_for(token: str) -> TypeSchema:
    """The table for `token`; an unknown type is an error, never guessed."""
    from sandbox.errors import UnsupportedResourceError

    schema = SCHEMAS.get(token)
    if schema is None:
        raise UnsupportedResourceError(
            f"resource type {token!r}: no update-vs-replace table (sandbox/engine/schema.py "
            f"knows {', '.join(sorted(SCHEMAS))})"
        )
    return schema


def diff_inputs(token: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> InputDiff:
    """Compare recorded inputs with the program's new ones, as the provider's plan would."""
    schema = schema_for(token)
    changed = sorted(
        key
        for key in set(old) | set(new)
        if _comparable(schema, key, old.get(key)) != _comparable(schema, key, new.get(key))
    )
    # An input the table does not list is treated as ForceNew: replacing is the safe guess
    # only for a change nobody declared updatable, and tests pin every key the program sets.
    replaces = [key for key in changed if key in schema.force_new or key not in schema.in_place]
    return InputDiff(tuple(changed), tuple(replaces))


def delete_before_replace(
    token: str, new_inputs: Mapping[str, Any], *, option: bool = False
) -> bool:
    """Whether a replacement must delete the old resource first.

    pulumi-terraform-bridge pkg/tfbridge/provider.go (Diff): `deleteBeforeReplace := len(replaces)
    > 0 && (res.Schema.DeleteBeforeReplace || nameRequiresDeleteBeforeReplace(...))`, and
    pkg/tfbridge/schema.go nameRequiresDeleteBeforeReplace is true when an auto-nameable property
    (`name` here) holds a value the user set rather than the auto-namer. pulumi-aws sets no
    UniqueNameFields for these types, so a user-set name means delete-before-replace even when the
    name itself changes. The `deleteBeforeReplace` resource option forces it too.
    """
    schema = schema_for(token)
    named = schema.name_property is not None and bool(new_inputs.get(schema.name_property))
    return option or named
