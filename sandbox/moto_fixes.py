"""moto behaviour the harness corrects so tests measure our code, not moto's races.

moto 5.2.5 numbers a shard's records as "highest so far + 1" with no lock
(`moto.kinesis.models.Shard.put_record`), so two concurrent PutRecords calls landing on one shard
can get the same sequence number and one record silently replaces the other; and
`Shard.get_records` iterates the same dict a writer may be growing. Kinesis never does either.
While installed, every shard's writes and reads are serialized by one lock.

Likewise moto's DynamoDB checks a write's condition and then writes
(`moto.dynamodb.models.DynamoDBBackend.put_item`, `update_item`, `delete_item`) with no lock, so two
concurrent conditional writes of one item can both pass and the older one land last; DynamoDB
evaluates a condition and writes atomically. The Lambda consumer keeps many conditional writes in
flight; while installed, DynamoDB's item writes are serialized by the same lock.

And moto invokes a function synchronously inside every PutRecord(s) to a stream that has a Kinesis
event source mapping (`moto.awslambda.models.LambdaBackend.send_kinesis_message`, one record per
event, in Docker); with no Docker each put waits on a failing Docker call and nothing is
delivered. While installed, that hook does nothing: `sandbox.lambda_mapping` delivers instead,
as Lambda's poller does.

And moto checks a request's SigV4 signature over ``data=self._body or self._data``
(`moto.iam.access_control.IAMRequestBase._create_aws_request`), where ``data`` is the parsed query
string or, when that is empty, the request's HEADERS (`moto.core.responses.BaseResponse.
setup_class`: ``if not querystring: querystring.update(headers)``). A body-less REST call (every
Lambda GET and DELETE: GetFunction, GetFunctionConfiguration, GetEventSourceMapping,
ListEventSourceMappings, DeleteFunction...) is signed by botocore over an empty payload, so under
IAM enforcement in a moto server moto computes another hash and answers 403 SignatureDoesNotMatch.
While installed, a request without a body is checked over an empty payload, as AWS checks it.

And moto's UpdateRole (`moto.iam.responses.IamResponse.update_role`) sets the description to None
when the call has no Description and the maximum session duration to 3600 when it has no
MaxSessionDuration; AWS changes only what the call names (terraform-provider-aws's role.go sends
UpdateRole with MaxSessionDuration alone). While installed, an omitted parameter keeps its value.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from botocore.awsrequest import AWSRequest
from moto.awslambda.models import LambdaBackend
from moto.core.responses import ActionResult, EmptyResult
from moto.dynamodb.models import DynamoDBBackend
from moto.iam.access_control import IAMRequestBase
from moto.iam.responses import IamResponse
from moto.kinesis.models import Shard

from sandbox.patching import PatchSet

_LOCK = threading.RLock()


def _serialized(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return method(*args, **kwargs)

    return locked


def _no_push_invoke(self: LambdaBackend, *args: Any, **kwargs: Any) -> None:
    """moto's invoke-on-put for Kinesis mappings, off (the mapping simulator polls instead)."""


def _signed_over_the_body(self: IAMRequestBase) -> AWSRequest:
    """The request moto re-signs, its payload the request's body (empty when it has none)."""
    request: AWSRequest = _PATCHES.previous(IAMRequestBase, "_create_aws_request")(self)
    if not self._body and self._method in _BODILESS_METHODS:
        request.data = b""
    return request


def _update_role_named_only(self: IamResponse) -> ActionResult:
    """UpdateRole changing only the parameters the call names, as AWS does."""
    role = self.backend.get_role(self._get_param("RoleName"))
    description = self._get_param("Description")
    max_session = self._get_param("MaxSessionDuration")
    kept: tuple[Any, Any] = (
        role.description if description is None else description,
        role.max_session_duration if max_session is None else max_session,
    )
    self.backend.update_role(role.name, *kept)
    return EmptyResult()


# Methods whose botocore requests carry no body; a form POST's body may reach moto only parsed.
_BODILESS_METHODS = frozenset({"GET", "HEAD", "DELETE"})

_PATCHES = PatchSet(
    [
        *(
            (Shard, name, _serialized(Shard.__dict__[name]))
            for name in ("put_record", "get_records")
        ),
        *(
            (DynamoDBBackend, name, _serialized(DynamoDBBackend.__dict__[name]))
            for name in ("put_item", "update_item", "delete_item")
        ),
        (LambdaBackend, "send_kinesis_message", _no_push_invoke),
        (IAMRequestBase, "_create_aws_request", _signed_over_the_body),
        (IamResponse, "update_role", _update_role_named_only),
    ]
)
is_installed = _PATCHES.is_installed
install = _PATCHES.install
uninstall = _PATCHES.uninstall
moto_fixes_installed = _PATCHES.installed
