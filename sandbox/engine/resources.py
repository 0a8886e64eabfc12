"""The destination's four resource types, with the boto3 calls terraform-provider-aws makes.

Each handler follows the provider's Create/Read/Update/Delete for its type (the files cited in
sandbox/engine/schema.py), against whatever AWS the context points at.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError

from sandbox.engine.handler import AwsContext, Live, State, is_not_found, tags_change

PLACEHOLDER_SUFFIX = "<random>"


def autoname(logical_name: str) -> str:
    """Name a resource the way Pulumi's auto-naming does: logical name plus 7 random hex digits."""
    return f"{logical_name}-{secrets.token_hex(4)[:7]}"


def _tag_list(tags: Any) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in (tags or {}).items()]


def _tag_map(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in tags or []}


def _document(value: Any) -> str:
    """IAM returns documents URL-encoded (boto3 decodes them to dicts); the program sends text."""
    if isinstance(value, str):
        return unquote(value)
    return json.dumps(value)


class StreamHandler:
    """aws_kinesis_stream (internal/service/kinesis/stream.go)."""

    def create(self, ctx: AwsContext, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreateStream, wait, then retention, encryption and tags as resourceStreamCreate does."""
        name = inputs.get("name") or autoname(logical_name)
        kinesis = ctx.client("kinesis", inputs.get("region"))
        mode = (inputs.get("streamModeDetails") or {}).get("streamMode", "PROVISIONED")
        request: dict[str, Any] = {"StreamName": name, "StreamModeDetails": {"StreamMode": mode}}
        if mode == "PROVISIONED":
            request["ShardCount"] = int(inputs.get("shardCount") or 1)
        kinesis.create_stream(**request)
        self._wait_active(ctx, kinesis, name)
        retention = int(inputs["retentionPeriod"])
        if retention > 24:
            kinesis.increase_stream_retention_period(
                StreamName=name, RetentionPeriodHours=retention
            )
        if inputs.get("encryptionType") == "KMS":
            kinesis.start_stream_encryption(
                StreamName=name, EncryptionType="KMS", KeyId=inputs["kmsKeyId"]
            )
            self._wait_active(ctx, kinesis, name)
        tags = inputs.get("tags") or {}
        if tags:
            kinesis.add_tags_to_stream(StreamName=name, Tags=dict(tags))
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        arn = summary["StreamARN"]
        state = {
            **inputs,
            "name": name,
            "arn": arn,
            "retentionPeriod": retention,
            "encryptionType": summary.get("EncryptionType", "NONE"),
            "tagsAll": dict(tags),
        }
        return arn, state

    def _wait_active(self, ctx: AwsContext, kinesis: Any, name: str) -> None:
        def active() -> bool:
            summary = kinesis.describe_stream_summary(StreamName=name)
            return bool(summary["StreamDescriptionSummary"]["StreamStatus"] == "ACTIVE")

        ctx.wait(f"stream {name!r} becoming ACTIVE", active)

    def _live(self, ctx: AwsContext, name: str, region: str | None) -> Live | None:
        kinesis = ctx.client("kinesis", region)
        try:
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        tags = _tag_map(kinesis.list_tags_for_stream(StreamName=name).get("Tags"))
        mode = (summary.get("StreamModeDetails") or {}).get("StreamMode", "PROVISIONED")
        encryption = summary.get("EncryptionType") or "NONE"
        inputs: State = {
            "name": summary["StreamName"],
            "streamModeDetails": {"streamMode": mode},
            "retentionPeriod": summary["RetentionPeriodHours"],
            "encryptionType": encryption,
        }
        if mode == "PROVISIONED":
            inputs["shardCount"] = summary["OpenShardCount"]
        if encryption == "KMS":
            inputs["kmsKeyId"] = summary.get("KeyId")
        if tags:
            inputs["tags"] = tags
        if region:
            inputs["region"] = region
        outputs = {**inputs, "arn": summary["StreamARN"], "tagsAll": tags}
        return Live(summary["StreamARN"], outputs, inputs)

    def read(self, ctx: AwsContext, resource_id: str, outputs: State) -> Live | None:
        """DescribeStreamSummary by name, as resourceStreamRead does."""
        return self._live(ctx, outputs["name"], outputs.get("region"))

    def import_(self, ctx: AwsContext, import_id: str) -> Live | None:
        """The stream's import ID is its name (stream.go's Importer finds it by name)."""
        return self._live(ctx, import_id, None)

    def update(
        self, ctx: AwsContext, resource_id: str, outputs: State, old: State, new: State
    ) -> State:
        """resourceStreamUpdate: mode, shards, retention, encryption, tags; each waits ACTIVE."""
        name = outputs["name"]
        kinesis = ctx.client("kinesis", new.get("region"))
        old_mode = (old.get("streamModeDetails") or {}).get("streamMode", "PROVISIONED")
        new_mode = (new.get("streamModeDetails") or {}).get("streamMode", "PROVISIONED")
        if old_mode != new_mode:
            kinesis.update_stream_mode(
                StreamARN=resource_id, StreamModeDetails={"StreamMode": new_mode}
            )
            self._wait_active(ctx, kinesis, name)
        if new_mode == "PROVISIONED" and old.get("shardCount") != new.get("shardCount"):
            current = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            target = int(new.get("shardCount") or 1)
            if current["OpenShardCount"] != target:
                kinesis.update_shard_count(
                    StreamName=name, TargetShardCount=target, ScalingType="UNIFORM_SCALING"
                )
                self._wait_active(ctx, kinesis, name)
        old_hours = int(old["retentionPeriod"])
        new_hours = int(new["retentionPeriod"])
        if new_hours > old_hours:
            kinesis.increase_stream_retention_period(
                StreamName=name, RetentionPeriodHours=new_hours
            )
        elif new_hours < old_hours:
            kinesis.decrease_stream_retention_period(
                StreamName=name, RetentionPeriodHours=new_hours
            )
        old_enc = (old["encryptionType"], old.get("kmsKeyId"))
        new_enc = (new["encryptionType"], new.get("kmsKeyId"))
        if old_enc != new_enc:
            if new_enc[0] == "KMS":
                kinesis.start_stream_encryption(
                    StreamName=name, EncryptionType="KMS", KeyId=new_enc[1]
                )
            else:
                kinesis.stop_stream_encryption(
                    StreamName=name, EncryptionType=old_enc[0], KeyId=old_enc[1]
                )
            self._wait_active(ctx, kinesis, name)
        upsert, removed = tags_change(old.get("tags"), new.get("tags"))
        if removed:
            kinesis.remove_tags_from_stream(StreamName=name, TagKeys=removed)
        if upsert:
            kinesis.add_tags_to_stream(StreamName=name, Tags=upsert)
        summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
        return {
            **new,
            "name": name,
            "arn": resource_id,
            "retentionPeriod": new_hours,
            "encryptionType": summary.get("EncryptionType", "NONE"),
            "tagsAll": dict(new.get("tags") or {}),
        }

    def delete(self, ctx: AwsContext, resource_id: str, outputs: State) -> None:
        """DeleteStream (EnforceConsumerDeletion false, the schema default) and wait it gone."""
        name = outputs["name"]
        kinesis = ctx.client("kinesis", outputs.get("region"))
        try:
            kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=False)
        except ClientError as exc:
            if is_not_found(exc):
                return
            raise
        ctx.wait(
            f"stream {name!r} deleting",
            lambda: self._live(ctx, name, outputs.get("region")) is None,
        )

    def exists(self, ctx: AwsContext, inputs: State) -> str | None:
        """A stream with the declared name already exists."""
        name = inputs.get("name")
        if name and self._live(ctx, name, inputs.get("region")) is not None:
            return f"Kinesis stream {name!r}"
        return None

    def predict(self, account: str, region: str, logical_name: str, inputs: State) -> State:
        """The name and ARN a create would give."""
        name = inputs.get("name") or f"{logical_name}-{PLACEHOLDER_SUFFIX}"
        arn = f"arn:aws:kinesis:{inputs.get('region') or region}:{account}:stream/{name}"
        return {**inputs, "name": name, "arn": arn}


class RoleHandler:
    """aws_iam_role (internal/service/iam/role.go)."""

    def create(self, ctx: AwsContext, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreateRole with the trust policy, session limit, boundary and tags."""
        name = inputs.get("name") or autoname(logical_name)
        request: dict[str, Any] = {
            "RoleName": name,
            "Path": inputs["path"],
            "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
            "MaxSessionDuration": int(inputs["maxSessionDuration"]),
            "Tags": _tag_list(inputs.get("tags")),
        }
        if inputs.get("description"):
            request["Description"] = inputs["description"]
        if inputs.get("permissionsBoundary"):
            request["PermissionsBoundary"] = inputs["permissionsBoundary"]
        role = ctx.client("iam").create_role(**request)["Role"]
        state = {
            **inputs,
            "name": name,
            "arn": role["Arn"],
            "uniqueId": role["RoleId"],
            "createDate": role["CreateDate"].isoformat(),
            "tagsAll": dict(inputs.get("tags") or {}),
        }
        return name, state

    def _live(self, ctx: AwsContext, name: str) -> Live | None:
        iam = ctx.client("iam")
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        tags = _tag_map(role.get("Tags"))
        inputs: State = {
            "name": role["RoleName"],
            "path": role["Path"],
            "assumeRolePolicy": _document(role["AssumeRolePolicyDocument"]),
            "maxSessionDuration": role.get("MaxSessionDuration", 3600),
        }
        if role.get("Description"):
            inputs["description"] = role["Description"]
        boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if boundary:
            inputs["permissionsBoundary"] = boundary
        if tags:
            inputs["tags"] = tags
        outputs = {**inputs, "arn": role["Arn"], "uniqueId": role["RoleId"], "tagsAll": tags}
        return Live(role["RoleName"], outputs, inputs)

    def read(self, ctx: AwsContext, resource_id: str, outputs: State) -> Live | None:
        """GetRole by name (the role's ID)."""
        return self._live(ctx, resource_id)

    def import_(self, ctx: AwsContext, import_id: str) -> Live | None:
        """The role's import ID is its name."""
        return self._live(ctx, import_id)

    def update(
        self, ctx: AwsContext, resource_id: str, outputs: State, old: State, new: State
    ) -> State:
        """resourceRoleUpdate: trust policy, description, session limit, boundary, tags."""
        iam = ctx.client("iam")
        name = resource_id
        if old.get("assumeRolePolicy") != new.get("assumeRolePolicy"):
            iam.update_assume_role_policy(RoleName=name, PolicyDocument=new["assumeRolePolicy"])
        if (old.get("description") or "") != (new.get("description") or ""):
            iam.update_role(RoleName=name, Description=new.get("description") or "")
        old_session = int(old["maxSessionDuration"])
        new_session = int(new["maxSessionDuration"])
        if old_session != new_session:
            iam.update_role(RoleName=name, MaxSessionDuration=new_session)
        if (old.get("permissionsBoundary") or "") != (new.get("permissionsBoundary") or ""):
            if new.get("permissionsBoundary"):
                iam.put_role_permissions_boundary(
                    RoleName=name, PermissionsBoundary=new["permissionsBoundary"]
                )
            else:
                iam.delete_role_permissions_boundary(RoleName=name)
        upsert, removed = tags_change(old.get("tags"), new.get("tags"))
        if removed:
            iam.untag_role(RoleName=name, TagKeys=removed)
        if upsert:
            iam.tag_role(RoleName=name, Tags=_tag_list(upsert))
        return {**outputs, **new, "name": name, "tagsAll": dict(new.get("tags") or {})}

    def delete(self, ctx: AwsContext, resource_id: str, outputs: State) -> None:
        """DeleteRole; NoSuchEntity is success (role.go resourceRoleDelete)."""
        try:
            ctx.client("iam").delete_role(RoleName=resource_id)
        except ClientError as exc:
            if not is_not_found(exc):
                raise

    def exists(self, ctx: AwsContext, inputs: State) -> str | None:
        """A role with the declared name already exists."""
        name = inputs.get("name")
        if name and self._live(ctx, name) is not None:
            return f"IAM role {name!r}"
        return None

    def predict(self, account: str, region: str, logical_name: str, inputs: State) -> State:
        """The name and ARN a create would give."""
        name = inputs.get("name") or f"{logical_name}-{PLACEHOLDER_SUFFIX}"
        path = inputs["path"]
        return {**inputs, "name": name, "arn": f"arn:aws:iam::{account}:role{path}{name}"}


# AWS keeps at most 5 versions of a managed policy (policy.go policyPruneVersions).
POLICY_VERSION_LIMIT = 5


class PolicyHandler:
    """aws_iam_policy (internal/service/iam/policy.go)."""

    def create(self, ctx: AwsContext, logical_name: str, inputs: State) -> tuple[str, State]:
        """CreatePolicy with its document, path, description and tags."""
        name = inputs.get("name") or autoname(logical_name)
        request: dict[str, Any] = {
            "PolicyName": name,
            "Path": inputs["path"],
            "PolicyDocument": inputs["policy"],
            "Tags": _tag_list(inputs.get("tags")),
        }
        if inputs.get("description"):
            request["Description"] = inputs["description"]
        policy = ctx.client("iam").create_policy(**request)["Policy"]
        state = {
            **inputs,
            "name": name,
            "arn": policy["Arn"],
            "policyId": policy["PolicyId"],
            "tagsAll": dict(inputs.get("tags") or {}),
        }
        return policy["Arn"], state

    def _live(self, ctx: AwsContext, arn: str) -> Live | None:
        iam = ctx.client("iam")
        try:
            policy = iam.get_policy(PolicyArn=arn)["Policy"]
            version = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        tags = _tag_map(iam.list_policy_tags(PolicyArn=arn).get("Tags"))
        inputs: State = {
            "name": policy["PolicyName"],
            "path": policy["Path"],
            "policy": _document(version["PolicyVersion"]["Document"]),
        }
        if policy.get("Description"):
            inputs["description"] = policy["Description"]
        if tags:
            inputs["tags"] = tags
        outputs = {**inputs, "arn": arn, "policyId": policy["PolicyId"], "tagsAll": tags}
        return Live(arn, outputs, inputs)

    def read(self, ctx: AwsContext, resource_id: str, outputs: State) -> Live | None:
        """GetPolicy + GetPolicyVersion (the default one), as resourcePolicyRead does."""
        return self._live(ctx, resource_id)

    def import_(self, ctx: AwsContext, import_id: str) -> Live | None:
        """The policy's import ID is its ARN."""
        return self._live(ctx, import_id)

    def update(
        self, ctx: AwsContext, resource_id: str, outputs: State, old: State, new: State
    ) -> State:
        """resourcePolicyUpdate: prune the oldest version at the limit, add one, make it default."""
        iam = ctx.client("iam")
        if old.get("policy") != new.get("policy"):
            versions = iam.list_policy_versions(PolicyArn=resource_id)["Versions"]
            if len(versions) >= POLICY_VERSION_LIMIT:
                candidates = [v for v in versions if not v["IsDefaultVersion"]]
                oldest = min(candidates, key=lambda v: v["CreateDate"])
                iam.delete_policy_version(PolicyArn=resource_id, VersionId=oldest["VersionId"])
            created = iam.create_policy_version(
                PolicyArn=resource_id, PolicyDocument=new["policy"], SetAsDefault=False
            )
            iam.set_default_policy_version(
                PolicyArn=resource_id, VersionId=created["PolicyVersion"]["VersionId"]
            )
        upsert, removed = tags_change(old.get("tags"), new.get("tags"))
        if removed:
            iam.untag_policy(PolicyArn=resource_id, TagKeys=removed)
        if upsert:
            iam.tag_policy(PolicyArn=resource_id, Tags=_tag_list(upsert))
        return {**outputs, **new, "name": outputs["name"], "tagsAll": dict(new.get("tags") or {})}

    def delete(self, ctx: AwsContext, resource_id: str, outputs: State) -> None:
        """Delete the non-default versions, then the policy (policy.go resourcePolicyDelete)."""
        iam = ctx.client("iam")
        try:
            for version in iam.list_policy_versions(PolicyArn=resource_id)["Versions"]:
                if not version["IsDefaultVersion"]:
                    iam.delete_policy_version(PolicyArn=resource_id, VersionId=version["VersionId"])
            iam.delete_policy(PolicyArn=resource_id)
        except ClientError as exc:
            if not is_not_found(exc):
                raise

    def exists(self, ctx: AwsContext, inputs: State) -> str | None:
        """A policy with the declared (fixed) name already exists on the path."""
        name = inputs.get("name")
        if not name:
            return None  # auto-named: a create never collides
        path = inputs["path"]
        pages = ctx.client("iam").get_paginator("list_policies")
        for page in pages.paginate(Scope="Local", PathPrefix=path):
            if any(p["PolicyName"] == name for p in page["Policies"]):
                return f"IAM policy {name!r}"
        return None

    def predict(self, account: str, region: str, logical_name: str, inputs: State) -> State:
        """The name and ARN a create would give."""
        name = inputs.get("name") or f"{logical_name}-{PLACEHOLDER_SUFFIX}"
        path = inputs["path"]
        return {**inputs, "name": name, "arn": f"arn:aws:iam::{account}:policy{path}{name}"}


class AttachmentHandler:
    """aws_iam_role_policy_attachment (internal/service/iam/role_policy_attachment.go)."""

    def create(self, ctx: AwsContext, logical_name: str, inputs: State) -> tuple[str, State]:
        """AttachRolePolicy; the ID is `<role>-<unique suffix>` as the provider makes it."""
        ctx.client("iam").attach_role_policy(RoleName=inputs["role"], PolicyArn=inputs["policyArn"])
        return f"{inputs['role']}-{secrets.token_hex(8)}", dict(inputs)

    def _live(self, ctx: AwsContext, role: str, policy_arn: str, resource_id: str) -> Live | None:
        try:
            pages = ctx.client("iam").get_paginator("list_attached_role_policies")
            attached = [
                p["PolicyArn"]
                for page in pages.paginate(RoleName=role)
                for p in page["AttachedPolicies"]
            ]
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise
        if policy_arn not in attached:
            return None
        inputs = {"role": role, "policyArn": policy_arn}
        return Live(resource_id, dict(inputs), inputs)

    def read(self, ctx: AwsContext, resource_id: str, outputs: State) -> Live | None:
        """ListAttachedRolePolicies holds the policy ARN."""
        return self._live(ctx, outputs["role"], outputs["policyArn"], resource_id)

    def import_(self, ctx: AwsContext, import_id: str) -> Live | None:
        """The attachment's import ID is `<role name>/<policy ARN>`."""
        role, _, policy_arn = import_id.partition("/")
        if not role or not policy_arn:
            return None
        return self._live(ctx, role, policy_arn, f"{role}-{policy_arn}")

    def update(
        self, ctx: AwsContext, resource_id: str, outputs: State, old: State, new: State
    ) -> State:
        """Never called: both inputs are ForceNew."""
        raise AssertionError("aws_iam_role_policy_attachment has no in-place update")

    def delete(self, ctx: AwsContext, resource_id: str, outputs: State) -> None:
        """DetachRolePolicy; NoSuchEntity is success."""
        try:
            ctx.client("iam").detach_role_policy(
                RoleName=outputs["role"], PolicyArn=outputs["policyArn"]
            )
        except ClientError as exc:
            if not is_not_found(exc):
                raise

    def exists(self, ctx: AwsContext, inputs: State) -> str | None:
        """Attaching twice is harmless in AWS: never a collision."""
        return None

    def predict(self, account: str, region: str, logical_name: str, inputs: State) -> State:
        """The attachment's outputs are its inputs."""
        return dict(inputs)
