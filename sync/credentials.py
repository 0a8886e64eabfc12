"""An assumed-role boto3 session whose credentials renew themselves before they expire."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import boto3
import botocore.session
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
)

from sync.errors import PreflightError

_METHOD = "cohort-sync-assume-role"
_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_EXTERNAL_ID_SHOWN = "[external ID]"  # what errors say in place of the secret's value

log = logging.getLogger(__name__)


class _AssumedRoleProvider(CredentialProvider):  # type: ignore[misc]
    """Hands botocore the one refreshable credential set; no other source is consulted."""

    METHOD = _METHOD
    CANONICAL_NAME = "custom-cohort-sync-assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def assume_role_session(
    base: boto3.Session,
    role_arn: str,
    *,
    session_name: str,
    external_id: str | None = None,
    duration_seconds: int = 3600,
    region: str,
    refresh_margin_seconds: int = 300,
    endpoint_url: str | None = None,
    time_fetcher: Callable[[], datetime] | None = None,
) -> boto3.Session:
    """Assume `role_arn` now (failing fast) and return a session that re-assumes it near expiry."""
    # endpoint_url=None lets boto3 apply AWS_ENDPOINT_URL(_STS) from the environment itself.
    sts = base.client("sts", region_name=region, endpoint_url=endpoint_url)

    def fetch() -> dict[str, Any]:
        request: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": session_name,
            "DurationSeconds": duration_seconds,
        }
        if external_id is not None:
            request["ExternalId"] = external_id
        # The external ID and the issued keys are secrets: the log says whether, never what.
        log.debug(
            "assuming role %s as session %s (%s external ID)",
            role_arn,
            session_name,
            "with an" if external_id is not None else "without an",
        )
        refused: ClientError | None = None
        try:
            issued = sts.assume_role(**request)["Credentials"]
        except ClientError as exc:
            refused = _without_external_id(exc, external_id)
        except BotoCoreError as exc:
            raise _unreachable(role_arn, endpoint_url, exc) from exc
        if refused is not None:
            # Raised outside the handler: STS validation errors quote the external ID, and the
            # original error would otherwise ride along as the context.
            raise _assume_failed(sts, role_arn, external_id, refused) from refused
        log.debug(
            "assumed role %s: key %s, expires %s",
            role_arn,
            issued["AccessKeyId"],
            issued["Expiration"].isoformat(),
        )
        return {
            "access_key": issued["AccessKeyId"],
            "secret_key": issued["SecretAccessKey"],
            "token": issued["SessionToken"],
            "expiry_time": issued["Expiration"].isoformat(),
        }

    # Refresh is advisory from the margin on (failures tolerated while the old keys still
    # work) and mandatory in the last third of it, so a multi-hour push never sends stale keys.
    options: dict[str, Any] = {
        "advisory_timeout": refresh_margin_seconds,
        "mandatory_timeout": max(1, refresh_margin_seconds // 3),
    }
    if time_fetcher is not None:
        options["time_fetcher"] = time_fetcher
    first = fetch()
    credentials = RefreshableCredentials(
        access_key=first["access_key"],
        secret_key=first["secret_key"],
        token=first["token"],
        expiry_time=_parse(first["expiry_time"]),
        refresh_using=fetch,
        method=_METHOD,
        **options,
    )
    core = botocore.session.Session()
    core.register_component(
        "credential_provider", CredentialResolver([_AssumedRoleProvider(credentials)])
    )
    return boto3.Session(botocore_session=core, region_name=region)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _assume_failed(
    sts: Any, role_arn: str, external_id: str | None, exc: ClientError
) -> PreflightError:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if code in _DENIED:
        caller = _caller(sts)
        # The external ID's value is a secret: say whether one was sent, never what it was.
        sent = "with an external ID" if external_id is not None else "without an external ID"
        return PreflightError(
            f"AccessDenied: {caller} cannot assume role {role_arn} ({sent}): the role's trust "
            "policy must allow this caller sts:AssumeRole, and its sts:ExternalId condition "
            "must match the external ID passed",
            fix="run as the account the trust policy names (re-run `pulumi up` if it changed), "
            "or pass the destination's --external-id",
        )
    if code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"}:
        return PreflightError(
            f"{code}: the base credentials cannot call sts:AssumeRole for {role_arn}",
            fix="refresh or replace the base profile's credentials, then run again",
        )
    return PreflightError(f"{code or 'error'} assuming role {role_arn}: {exc}")


def _unreachable(role_arn: str, endpoint_url: str | None, exc: BotoCoreError) -> PreflightError:
    """AssumeRole never answered: no base credentials, or nothing listening at the endpoint."""
    if isinstance(exc, NoCredentialsError):
        return PreflightError(
            f"cannot assume role {role_arn}: no AWS credentials found to call sts:AssumeRole with",
            fix="give boto3 the base credentials of the account Amplitude acts from "
            "(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE), then run again",
        )
    if isinstance(exc, EndpointConnectionError):
        return PreflightError(
            f"cannot assume role {role_arn}: nothing answers at {exc.kwargs.get('endpoint_url')}",
            fix="check the network and --endpoint-url (or AWS_ENDPOINT_URL); for a local world "
            "start `cohort-sync local serve` first and pass the --endpoint-url it prints",
        )
    return PreflightError(
        f"cannot assume role {role_arn}: {exc}",
        fix="check the network, the region and the base credentials, then run again",
    )


def _without_external_id(exc: ClientError, external_id: str | None) -> ClientError:
    """`exc`, or a copy with the external ID's value replaced wherever the response quotes it."""
    if not external_id or external_id not in str(exc.response):
        return exc

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace(external_id, _EXTERNAL_ID_SHOWN)
        if isinstance(value, dict):
            return {key: scrub(item) for key, item in value.items()}
        if isinstance(value, list):
            return [scrub(item) for item in value]
        return value

    return ClientError(scrub(exc.response), exc.operation_name)


def _caller(sts: Any) -> str:
    try:
        return f"caller {sts.get_caller_identity()['Arn']}"
    except (ClientError, BotoCoreError):
        return "the caller (identity unknown)"
