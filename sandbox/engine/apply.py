"""The local apply engine: run the program under Pulumi's mocks and create what it declares.

Each resource the program registers is created with the AWS calls the AWS provider would make,
against whatever endpoint the boto3 session points at (an embedded moto, a moto server, or AWS
itself), and the IDs and ARNs that come back resolve the program's Outputs as in `pulumi up`.
"""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

import boto3
import pulumi
from botocore.exceptions import BotoCoreError, ClientError

from sandbox.engine import consumer_resources
from sandbox.engine.secrets import unwrap_secrets
from sandbox.errors import ApplyError, UnsupportedResourceError

STREAM = "aws:kinesis/stream:Stream"
ROLE = "aws:iam/role:Role"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
GET_REGION = "aws:index/getRegion:getRegion"
GET_CALLER_IDENTITY = "aws:index/getCallerIdentity:getCallerIdentity"
GET_PARTITION = "aws:index/getPartition:getPartition"

State = dict[str, Any]


def autoname(logical_name: str) -> str:
    """Name a resource the way Pulumi's auto-naming does: logical name plus 7 random hex digits."""
    return f"{logical_name}-{secrets.token_hex(4)[:7]}"


def _tag_list(tags: Mapping[str, str] | None) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in (tags or {}).items()]


class LocalApply(pulumi.runtime.Mocks):
    """Pulumi mocks that create each registered resource through boto3."""

    def __init__(
        self,
        session: boto3.Session,
        *,
        region: str,
        endpoint_url: str | None = None,
        stream_wait_seconds: float = 300.0,
    ) -> None:
        self._session = session
        self._region = region
        self._endpoint_url = endpoint_url
        self._stream_wait_seconds = stream_wait_seconds
        self._creators: dict[str, Callable[[str, State], tuple[str, State]]] = {
            STREAM: self._create_stream,
            ROLE: self._create_role,
            POLICY: self._create_policy,
            ATTACHMENT: self._attach_policy,
        }
        for type_, create in consumer_resources.CREATORS.items():  # the Lambda consumer's
            self._creators[type_] = functools.partial(create, self._client)
        self.created: list[tuple[str, str, str]] = []  # (type, logical name, id)

    def _client(self, service: str, region: str | None = None) -> Any:
        return self._session.client(
            service, region_name=region or self._region, endpoint_url=self._endpoint_url
        )

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, State]:
        """Create one resource; unknown types are an error, never skipped."""
        if not args.custom:
            return args.name, {}  # a component: a grouping with no cloud object behind it
        creator = self._creators.get(args.typ)
        if creator is None:
            raise UnsupportedResourceError(
                f"resource type {args.typ!r} (resource {args.name!r}): the local apply engine "
                f"creates only {', '.join(sorted(self._creators))}"
            )
        inputs, _ = unwrap_secrets(dict(args.inputs))
        try:
            resource_id, state = creator(args.name, inputs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise ApplyError(
                f"creating {args.typ} {args.name!r} failed: {error.get('Code')}: "
                f"{error.get('Message')}"
            ) from exc
        except BotoCoreError as exc:
            # No answer at all: an unreachable endpoint, missing credentials or region.
            raise ApplyError(f"creating {args.typ} {args.name!r} failed: {exc}") from exc
        self.created.append((args.typ, args.name, resource_id))
        return resource_id, state

    def call(
        self, args: pulumi.runtime.MockCallArgs
    ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        """Answer the provider functions the program invokes (no check failures)."""
        return self._invoke(args), []

    def _invoke(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        if args.token == GET_REGION:
            region = args.args.get("region") or self._region
            return {
                "id": region,
                "name": region,
                "region": region,
                "endpoint": f"ec2.{region}.amazonaws.com",
                "description": region,
            }
        if args.token == GET_CALLER_IDENTITY:
            identity = self._client("sts").get_caller_identity()
            return {
                "id": identity["Account"],
                "accountId": identity["Account"],
                "arn": identity["Arn"],
                "userId": identity["UserId"],
            }
        if args.token == GET_PARTITION:
            return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com"}
        raise UnsupportedResourceError(
            f"invoke {args.token!r}: the local apply engine answers only "
            f"{', '.join((GET_REGION, GET_CALLER_IDENTITY, GET_PARTITION))}"
        )

    def _create_stream(self, logical_name: str, inputs: State) -> tuple[str, State]:
        name = inputs.get("name") or autoname(logical_name)
        region = inputs.get("region")
        kinesis = self._client("kinesis", region)
        mode = (inputs.get("streamModeDetails") or {}).get("streamMode", "PROVISIONED")
        request: dict[str, Any] = {"StreamName": name, "StreamModeDetails": {"StreamMode": mode}}
        if mode == "PROVISIONED":
            request["ShardCount"] = int(inputs.get("shardCount") or 1)
        kinesis.create_stream(**request)
        self._wait_active(kinesis, name)
        retention = int(inputs.get("retentionPeriod") or 24)
        if retention > 24:
            kinesis.increase_stream_retention_period(
                StreamName=name, RetentionPeriodHours=retention
            )
        if inputs.get("encryptionType") == "KMS":
            kinesis.start_stream_encryption(
                StreamName=name, EncryptionType="KMS", KeyId=inputs["kmsKeyId"]
            )
            self._wait_active(kinesis, name)
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

    def _wait_active(self, kinesis: Any, name: str) -> None:
        deadline = time.monotonic() + self._stream_wait_seconds
        while True:
            summary = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            if summary["StreamStatus"] == "ACTIVE":
                return
            if time.monotonic() > deadline:
                raise ApplyError(
                    f"stream {name!r} still {summary['StreamStatus']} after "
                    f"{self._stream_wait_seconds:.0f} s"
                )
            time.sleep(1.0)

    def _create_role(self, logical_name: str, inputs: State) -> tuple[str, State]:
        name = inputs.get("name") or autoname(logical_name)
        request: dict[str, Any] = {
            "RoleName": name,
            "Path": inputs.get("path") or "/",
            "AssumeRolePolicyDocument": inputs["assumeRolePolicy"],
            "MaxSessionDuration": int(inputs.get("maxSessionDuration") or 3600),
            "Tags": _tag_list(inputs.get("tags")),
        }
        if inputs.get("description"):
            request["Description"] = inputs["description"]
        if inputs.get("permissionsBoundary"):
            request["PermissionsBoundary"] = inputs["permissionsBoundary"]
        role = self._client("iam").create_role(**request)["Role"]
        state = {
            **inputs,
            "name": name,
            "arn": role["Arn"],
            "uniqueId": role["RoleId"],
            "createDate": role["CreateDate"].isoformat(),
            "tagsAll": dict(inputs.get("tags") or {}),
        }
        return name, state

    def _create_policy(self, logical_name: str, inputs: State) -> tuple[str, State]:
        name = inputs.get("name") or autoname(logical_name)
        request: dict[str, Any] = {
            "PolicyName": name,
            "Path": inputs.get("path") or "/",
            "PolicyDocument": inputs["policy"],
            "Tags": _tag_list(inputs.get("tags")),
        }
        if inputs.get("description"):
            request["Description"] = inputs["description"]
        policy = self._client("iam").create_policy(**request)["Policy"]
        state = {
            **inputs,
            "name": name,
            "arn": policy["Arn"],
            "policyId": policy["PolicyId"],
            "tagsAll": dict(inputs.get("tags") or {}),
        }
        return policy["Arn"], state

    def _attach_policy(self, logical_name: str, inputs: State) -> tuple[str, State]:
        self._client("iam").attach_role_policy(
            RoleName=inputs["role"], PolicyArn=inputs["policyArn"]
        )
        return f"{inputs['role']}-{secrets.token_hex(8)}", dict(inputs)
