"""IAM behaviour moto 5.2.5 lacks, patched in while a harness world runs.

Every patch is listed here, with the moto behaviour it replaces and why:

1. ``moto.iam.access_control.IAMRequest.check_action_permitted`` (wrapped).
   a. ``sts:AssumeRole``: moto evaluates the caller's identity policy, then reads the trust policy
      of the role only if the role is in the CALLER's account (a cross-account role's trust policy
      is never read, so any caller with an identity grant gets in) and compares trust principals
      by exact ARN (so ``arn:aws:iam::A:root`` never matches a user of A); its conditions know
      only StringEquals, pass when the request has no ExternalId and ignore unknown operators
      (fail open). The patch looks the role up in the role ARN's account and applies AWS's rules
      through ``sandbox.trust``: explicit Deny anywhere wins; the trust policy must allow the
      caller (ExternalId conditions included); the caller's identity policy must allow
      ``sts:AssumeRole`` on the role ARN unless the trust policy names the caller itself in the
      same account. A missing role is AccessDenied, as AWS does not reveal whether it exists.
   b. Every other denial: moto answers with an XML ``AccessDenied`` body even for JSON-protocol
      services (Kinesis, KMS), which botocore cannot parse (the error code surfaces as "403").
      The patch answers JSON services with AWS's ``AccessDeniedException`` and names the resource.
2. ``moto.iam.responses.IamResponse.simulate_principal_policy`` (added): moto raises
   NotImplementedError; Amplitude calls it to check the role before delivering.
3. ``moto.iam.responses.IamResponse._determine_resource`` (wrapped): moto authorizes every IAM
   call without a RoleName on "*"; SimulatePrincipalPolicy is authorized on PolicySourceArn, as AWS
   does, so a grant scoped to the role's own ARN works and a grant on another role does not.
4. ``moto.kinesis.responses.KinesisResponse._determine_resource`` (added): moto authorizes every
   Kinesis call on "*", so a policy scoped to one stream ARN denies even writes to that stream.
5. ``moto.kms.responses.KmsResponse._determine_resource`` (added): the same for KMS key ARNs.
6. ``moto.dynamodb.responses.DynamoHandler._determine_resource`` (added): the same for DynamoDB
   table ARNs (TableName), so the Lambda consumer's role, scoped to its two tables, can write
   them and nothing else.

Enforcement itself stays moto's (``INITIAL_NO_AUTH_ACTION_COUNT``); these patches only change what
an enforced request is checked against, so with enforcement off (moto's default) AssumeRole behaves
as moto's does. Install and uninstall are idempotent and restore exactly the attributes moto had.

Still not modelled (moto 5.2.5 and these patches alike): session policies passed to AssumeRole,
permissions boundaries at enforcement time (SimulatePrincipalPolicy does apply them), KMS key
policies, the kms:GenerateDataKey a write to a CMK-encrypted stream needs, and condition keys
other than sts:ExternalId on trust policies (sandbox.trust fails closed on them). Conditions in
identity policies: moto's enforcement ignores them in effect (it knows only StringEquals, skips
other operators and passes keys it has no value for), while SimulatePrincipalPolicy here treats a
conditioned statement as not applying and lists its keys in MissingContextValues, as AWS does
without ContextEntries.
"""

from __future__ import annotations

import json
import logging
import re
from binascii import Error as BinasciiError
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import DataNotFoundError, UnknownServiceError
from moto.core.exceptions import AccessDeniedError, JsonRESTError, _RESTError
from moto.core.responses import ActionResult
from moto.core.utils import get_service_model
from moto.dynamodb.responses import DynamoHandler
from moto.iam.access_control import IAMPolicy, IAMPolicyStatement, IAMRequest, PermissionResult
from moto.iam.exceptions import InvalidInput, NoSuchEntity, NotFoundException
from moto.iam.models import IAMBackend, ManagedPolicy, iam_backends
from moto.iam.responses import IamResponse
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.kms.responses import KmsResponse

from provisioning import constants as c
from sandbox.patching import PatchSet
from sandbox.trust import evaluate_trust

_ROLE_ARN = re.compile(r"arn:(?P<partition>aws[a-z-]*):iam::(?P<account>\d{12}):role/.+")
_SOURCE_ARN = re.compile(
    r"arn:aws[a-z-]*:iam::(?P<account>\d{12}):(?P<kind>user|role|group)/(?:.*/)?(?P<name>[^/]+)"
)
_SIMULATE_ACTION_NAME = "SimulatePrincipalPolicy"
_IMPLICIT = " because no identity-based policy allows the {action} action"
_EXPLICIT = " with an explicit deny in an identity-based policy"

log = logging.getLogger(__name__)

# Callers (user ARN) that stand in for an AWS service principal (e.g. lambda.amazonaws.com).
SERVICE_CALLERS: dict[str, str] = {}


# --- 1. authorization -----------------------------------------------------------------------


def _access_denied(request: IAMRequest, resource: str, detail: str = "") -> _RESTError:
    """AWS's AccessDenied for the request's protocol, naming caller, action and resource."""
    message = (
        f"User: {request._access_key.arn} is not authorized to perform: {request._action}"
        f" on resource: {resource}{detail}"
    )
    if _is_json_protocol(request._service):
        return JsonRESTError("AccessDeniedException", message)
    error = _RESTError("AccessDenied", message)
    error.code = 403
    return error


def _is_json_protocol(service: str) -> bool:
    try:
        return get_service_model(service).protocol in ("json", "rest-json")
    except (UnknownServiceError, DataNotFoundError):
        return False


def _identity_decision(request: IAMRequest, resource: str) -> PermissionResult:
    """moto's own evaluation of the caller's identity policies for one action and resource."""
    decision = PermissionResult.NEUTRAL
    for policy in request._access_key.collect_policies():
        result = IAMPolicy(policy).is_action_permitted(request._action, resource)
        if result == PermissionResult.DENIED:
            return result
        if result == PermissionResult.PERMITTED:
            decision = result
    return decision


def _check_assume_role(request: IAMRequest, role_arn: str) -> None:
    """AWS's sts:AssumeRole authorization: identity policy and the target role's trust policy."""
    identity = _identity_decision(request, role_arn)
    if identity == PermissionResult.DENIED:
        raise _access_denied(request, role_arn, _EXPLICIT)
    found = _ROLE_ARN.fullmatch(role_arn)
    if found is None:
        raise _access_denied(request, role_arn)
    role_account = found["account"]
    try:
        role = iam_backends[role_account][found["partition"]].get_role_by_arn(role_arn)
    except NotFoundException:
        raise _access_denied(request, role_arn) from None
    external_ids = request._data.get("ExternalId") or [None]
    trust = evaluate_trust(
        role.assume_role_policy_document,
        caller_arn=request._access_key.arn,
        caller_account=request.account_id,
        external_id=external_ids[0],
        caller_service=SERVICE_CALLERS.get(request._access_key.arn),
    )
    if not trust.allowed:
        # AWS does not say why; the log does, for whoever debugs a test.
        log.info("AssumeRole %s by %s denied: %s", role_arn, request._access_key.arn, trust.reason)
        raise _access_denied(request, role_arn)
    named_in_same_account = not trust.via_account and role_account == request.account_id
    if identity != PermissionResult.PERMITTED and not named_in_same_account:
        raise _access_denied(request, role_arn, _IMPLICIT.format(action=request._action))


def _check_action_permitted(self: IAMRequest, resource: str) -> None:
    if self._action == c.ASSUME_ROLE_ACTION:
        _check_assume_role(self, resource)
        return
    original: Callable[[IAMRequest, str], None] = _PATCHES.previous(
        IAMRequest, "check_action_permitted"
    )
    try:
        original(self, resource)
    except AccessDeniedError:
        explicit = _identity_decision(self, resource) == PermissionResult.DENIED
        detail = _EXPLICIT if explicit else _IMPLICIT.format(action=self._action)
        raise _access_denied(self, resource, detail) from None


# --- 2. SimulatePrincipalPolicy -------------------------------------------------------------


@dataclass(frozen=True)
class _SourcePolicy:
    policy_id: str
    policy_type: str  # AWS's PolicySourceType: user, group, role, user-managed, aws-managed
    document: dict[str, Any]


def _managed(policy: ManagedPolicy) -> _SourcePolicy:
    version = next(v for v in policy.versions if v.is_default)
    policy_type = "aws-managed" if ":iam::aws:policy/" in policy.arn else "user-managed"
    return _SourcePolicy(policy.arn, policy_type, json.loads(version.document))


def _inline(name: str, kind: str, document: str) -> _SourcePolicy:
    return _SourcePolicy(name, kind, json.loads(document))


def _source_policies(
    backend: IAMBackend, source_arn: str
) -> tuple[list[_SourcePolicy], _SourcePolicy | None]:
    """Identity policies (inline, attached, via groups) and permissions boundary of a principal."""
    found = _SOURCE_ARN.fullmatch(source_arn)
    if found is None:
        raise InvalidInput(f"Invalid ARN: {source_arn}")
    kind, name = found["kind"], found["name"]
    entity: Any
    try:
        if kind == "role":
            entity = backend.get_role(name)
        elif kind == "user":
            entity = backend.get_user(name)
        else:
            entity = backend.get_group(name)
    except (NotFoundException, NoSuchEntity):
        entity = None
    if entity is None or entity.arn != source_arn:
        # IAM answers only for principals of the caller's own account.
        raise NotFoundException(f"The {kind} with name {name} cannot be found.")
    policies = [_inline(n, kind, d) for n, d in entity.policies.items()]
    policies += [_managed(p) for p in entity.managed_policies.values()]
    if kind == "user":
        for group in backend.get_groups_for_user(name):
            policies += [_inline(n, "group", d) for n, d in group.policies.items()]
            policies += [_managed(p) for p in group.managed_policies.values()]
    # moto keeps boundaries on roles only (users have none in moto 5.2.5).
    boundary_arn = getattr(entity, "permissions_boundary_arn", None)
    boundary = _managed(backend.get_policy(boundary_arn)) if boundary_arn else None
    return policies, boundary


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _statement_effect(
    statement: dict[str, Any], action: str, resource: str, missing: list[str]
) -> PermissionResult:
    """PERMITTED / DENIED when the statement applies to (action, resource), else NEUTRAL."""
    bare = {key: value for key, value in statement.items() if key != "Condition"}
    if "NotResource" in bare:
        not_resource = bare.pop("NotResource")
        if IAMPolicyStatement({"NotResource": not_resource})._check_element_matches(
            "NotResource", resource
        ):
            return PermissionResult.NEUTRAL
        bare["Resource"] = "*"
    # moto's statement matcher, so simulation agrees with moto's enforcement of the real call.
    effect = IAMPolicyStatement(bare).is_action_permitted(action, resource)
    if effect != PermissionResult.NEUTRAL and statement.get("Condition"):
        # No ContextEntries are supported: like AWS without them, a conditioned statement does not
        # apply, and its keys are reported as missing context.
        for pairs in statement["Condition"].values():
            missing.extend(key for key in pairs if key not in missing)
        return PermissionResult.NEUTRAL
    return effect


def _decide(
    policies: list[_SourcePolicy], action: str, resource: str, missing: list[str]
) -> tuple[str, list[dict[str, Any]]]:
    """AWS's decision over a set of policies and the statements that produced it."""
    allows: list[dict[str, Any]] = []
    denies: list[dict[str, Any]] = []
    for policy in policies:
        for statement in _statements(policy.document):
            effect = _statement_effect(statement, action, resource, missing)
            matched = {"SourcePolicyId": policy.policy_id, "SourcePolicyType": policy.policy_type}
            if effect == PermissionResult.DENIED:
                denies.append(matched)
            elif effect == PermissionResult.PERMITTED:
                allows.append(matched)
    if denies:
        return "explicitDeny", denies
    if allows:
        return "allowed", allows
    return "implicitDeny", []


def _evaluate(
    policies: list[_SourcePolicy], boundary: _SourcePolicy | None, action: str, resource: str
) -> dict[str, Any]:
    missing: list[str] = []
    decision, matched = _decide(policies, action, resource, missing)
    result: dict[str, Any] = {"EvalActionName": action, "EvalResourceName": resource}
    if boundary is not None:
        bound_decision, bound_matched = _decide([boundary], action, resource, missing)
        result["PermissionsBoundaryDecisionDetail"] = {
            "AllowedByPermissionsBoundary": bound_decision == "allowed"
        }
        if bound_decision == "explicitDeny" and decision != "explicitDeny":
            decision, matched = bound_decision, bound_matched
        elif bound_decision == "implicitDeny" and decision == "allowed":
            decision, matched = "implicitDeny", []
    result.update(EvalDecision=decision, MatchedStatements=matched, MissingContextValues=missing)
    return result


def _simulate_principal_policy(self: IamResponse) -> ActionResult:
    """iam:SimulatePrincipalPolicy over the principal's identity policies and boundary."""
    source_arn = self._get_param("PolicySourceArn")
    actions: list[str] = self._get_param("ActionNames") or []
    resources: list[str] = self._get_param("ResourceArns") or ["*"]
    policies, boundary = _source_policies(self.backend, source_arn)
    results = [
        _evaluate(policies, boundary, action, resource)
        for action in actions
        for resource in resources
    ]
    return ActionResult({"EvaluationResults": results, "IsTruncated": False})


# --- 3-5. the resource each request is authorized on ----------------------------------------


def _iam_resource(self: IamResponse) -> str:
    if self._get_action() == _SIMULATE_ACTION_NAME:
        return str(self._get_param("PolicySourceArn") or "*")
    original: Callable[[IamResponse], str] = _PATCHES.previous(IamResponse, "_determine_resource")
    return original(self)


def _kinesis_resource(self: KinesisResponse) -> str:
    for key in ("StreamARN", "ConsumerARN", "ResourceARN"):
        arn = self._get_param(key)
        if arn:
            return str(arn)
    name = self._get_param("StreamName")
    iterator = self._get_param("ShardIterator")
    if not name and iterator:
        try:
            name = decompose_shard_iterator(iterator)[0]
        except (BinasciiError, UnicodeDecodeError, IndexError):
            return "*"  # moto's handler reports the malformed iterator
    if not name:
        return "*"  # ListStreams and friends have no resource
    return f"arn:{self.partition}:kinesis:{self.region}:{self.current_account}:stream/{name}"


def _kms_resource(self: KmsResponse) -> str:
    try:
        key_id = self._get_param("KeyId")
    except ValueError:
        return "*"
    if not key_id:
        return "*"
    try:
        return str(self.kms_backend.describe_key(key_id).arn)
    except (KeyError, TypeError):
        # Unknown key: authorize on what was named; moto's handler then reports NotFound.
        return str(key_id) if str(key_id).startswith("arn:") else "*"


def _dynamodb_resource(self: DynamoHandler) -> str:
    try:
        name = self._get_param("TableName")
    except (ValueError, TypeError, AttributeError):
        return "*"
    if not name:
        return "*"  # ListTables and friends have no table
    if str(name).startswith("arn:"):
        return str(name)
    return f"arn:{self.partition}:dynamodb:{self.region}:{self.current_account}:table/{name}"


_PATCHES = PatchSet(
    (
        (IAMRequest, "check_action_permitted", _check_action_permitted),
        (IamResponse, "simulate_principal_policy", _simulate_principal_policy),
        (IamResponse, "_determine_resource", _iam_resource),
        (KinesisResponse, "_determine_resource", _kinesis_resource),
        (KmsResponse, "_determine_resource", _kms_resource),
        (DynamoHandler, "_determine_resource", _dynamodb_resource),
    )
)
is_installed = _PATCHES.is_installed
install = _PATCHES.install
uninstall = _PATCHES.uninstall
iam_gaps_installed = _PATCHES.installed
