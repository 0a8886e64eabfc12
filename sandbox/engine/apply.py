"""The local apply engine: run the program under Pulumi's mocks and create what it declares.

Each resource the program registers is created with the AWS calls the AWS provider would make,
against whatever endpoint the boto3 session points at (an embedded moto, a moto server, or AWS
itself), and the IDs and ARNs that come back resolve the program's Outputs as in `pulumi up`.
"""

from __future__ import annotations

from typing import Any

import boto3
import pulumi
from botocore.exceptions import BotoCoreError, ClientError

from sandbox.engine.registry import AwsContext, handler_for
from sandbox.engine.resources import autoname
from sandbox.engine.schema import ATTACHMENT, POLICY, ROLE, STREAM
from sandbox.engine.secrets import unwrap_secrets
from sandbox.errors import ApplyError, UnsupportedResourceError

__all__ = ["ATTACHMENT", "POLICY", "ROLE", "STREAM", "LocalApply", "autoname"]
GET_REGION = "aws:index/getRegion:getRegion"
GET_CALLER_IDENTITY = "aws:index/getCallerIdentity:getCallerIdentity"
GET_PARTITION = "aws:index/getPartition:getPartition"

State = dict[str, Any]


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
        self._ctx = AwsContext(session, region, endpoint_url, stream_wait_seconds)
        self.created: list[tuple[str, str, str]] = []  # (type, logical name, id)

    def _client(self, service: str, region: str | None = None) -> Any:
        return self._session.client(
            service, region_name=region or self._region, endpoint_url=self._endpoint_url
        )

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, State]:
        """Create one resource; unknown types are an error, never skipped."""
        if not args.custom:
            return args.name, {}  # a component: a grouping with no cloud object behind it
        handler = handler_for(args.typ, args.name)
        inputs, _ = unwrap_secrets(dict(args.inputs))
        try:
            resource_id, state = handler.create(self._ctx, args.name, inputs)
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
