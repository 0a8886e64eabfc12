"""The two-account moto world: the customer's account, Amplitude's, IAM enforced between."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from unittest import mock

import boto3
import botocore.session
from botocore.loaders import Loader, create_loader
from moto import mock_aws, settings
from moto.core.authorization import ActionAuthenticatorMixin
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.iam.models import iam_backends

from provisioning import constants as c
from sandbox import iam_gaps, moto_fixes
from sandbox.errors import SandboxError

CUSTOMER_ADMIN_NAME = "customer-admin"
AMPLITUDE_USER_NAME = "amplitude-exporter"
# A third account, neither the customer's nor Amplitude's: where the proof's outsiders live.
STRANGER_ACCOUNT_ID = "111122223333"
STRANGER_ADMIN_NAME = "stranger-admin"
_PARTITION = "aws"
_POLICY_NAME = "harness"

ADMIN_POLICY: dict[str, Any] = {
    "Version": c.POLICY_VERSION,
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}
# Amplitude's side: its exporter may assume roles anywhere; each customer's trust policy decides.
AMPLITUDE_POLICY: dict[str, Any] = {
    "Version": c.POLICY_VERSION,
    "Statement": [
        {"Effect": "Allow", "Action": c.ASSUME_ROLE_ACTION, "Resource": "arn:aws:iam::*:role/*"}
    ],
}
# Environment variables that would steer boto3 or moto away from the world's own settings.
_ENV_PREFIXES = ("AWS_", "MOTO_ACCOUNT_ID")
_DUMMY_ENV = {
    "AWS_ACCESS_KEY_ID": "harness-dummy",
    "AWS_SECRET_ACCESS_KEY": "harness-dummy",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


@dataclass(frozen=True)
class Credentials:
    """An access key (and session token for assumed roles); repr never shows the secrets."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    def session(self, region: str) -> boto3.Session:
        """A boto3 session acting as this principal."""
        return boto3.Session(
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            region_name=region,
        )

    @classmethod
    def from_assume_role(cls, response: dict[str, Any]) -> Credentials:
        """The credentials in an sts:AssumeRole response."""
        creds = response["Credentials"]
        return cls(creds["AccessKeyId"], creds["SecretAccessKey"], creds["SessionToken"])

    def to_json(self) -> dict[str, str | None]:
        """Plain data, secrets included: for handing a world to another process."""
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credentials:
        """The inverse of to_json."""
        return cls(data["access_key_id"], data["secret_access_key"], data.get("session_token"))


@dataclass(frozen=True)
class MotoWorld:
    """Where the harness's AWS lives (in-process or a server) and who may act in it."""

    region: str
    endpoint_url: str | None  # None: in-process mock_aws
    customer_account_id: str
    amplitude_account_id: str
    customer_admin: Credentials
    amplitude: Credentials
    stranger_admin: Credentials  # an admin of STRANGER_ACCOUNT_ID

    def client(self, service: str, credentials: Credentials) -> Any:
        """A botocore client for the service, acting as the principal, in this world."""
        session = botocore.session.Session()
        # Loading service models dominates client creation (50-200 ms); share them between clients.
        session.register_component("data_loader", _shared_loader())
        return session.create_client(
            service,
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
        )

    def new_principal(
        self, account_id: str, name: str, policy: dict[str, Any] | None = None
    ) -> Credentials:
        """Create an IAM user (with an inline policy, if given); its access key.

        In-process, straight in moto's backend of any account. Over HTTP, as the account's admin
        with IAM's own calls, authorized like any other client's: there is no window in which
        the server skips authorization (moto's reset-auth would open one for every client).
        """
        if self.endpoint_url is None or _is_served_here(self.endpoint_url):
            return create_principal(account_id, name, policy)
        iam = self.client("iam", self._admin_of(account_id))
        iam.create_user(UserName=name)
        if policy is not None:
            iam.put_user_policy(
                UserName=name, PolicyName=_POLICY_NAME, PolicyDocument=json.dumps(policy)
            )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return Credentials(key["AccessKeyId"], key["SecretAccessKey"])

    def remove_principal(self, account_id: str, name: str, credentials: Credentials) -> None:
        """Delete a user `new_principal` made (its policy and key first), so names can recur."""
        if self.endpoint_url is None or _is_served_here(self.endpoint_url):
            remove_principal(account_id, name, credentials.access_key_id)
            return
        iam = self.client("iam", self._admin_of(account_id))
        if iam.list_user_policies(UserName=name)["PolicyNames"]:
            iam.delete_user_policy(UserName=name, PolicyName=_POLICY_NAME)
        iam.delete_access_key(UserName=name, AccessKeyId=credentials.access_key_id)
        iam.delete_user(UserName=name)

    def _admin_of(self, account_id: str) -> Credentials:
        admins = {
            self.customer_account_id: self.customer_admin,
            STRANGER_ACCOUNT_ID: self.stranger_admin,
        }
        if account_id not in admins:
            raise SandboxError(
                f"account {account_id}: a served world creates principals only in the accounts "
                f"it has an admin of ({', '.join(sorted(admins))}); use one of them"
            )
        return admins[account_id]

    def to_json(self) -> dict[str, Any]:
        """Plain data, credentials included, from which another process rebuilds the world."""
        return {
            "region": self.region,
            "endpoint_url": self.endpoint_url,
            "customer_account_id": self.customer_account_id,
            "amplitude_account_id": self.amplitude_account_id,
            "customer_admin": self.customer_admin.to_json(),
            "amplitude": self.amplitude.to_json(),
            "stranger_admin": self.stranger_admin.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MotoWorld:
        """The inverse of to_json."""
        return cls(
            region=data["region"],
            endpoint_url=data["endpoint_url"],
            customer_account_id=data["customer_account_id"],
            amplitude_account_id=data["amplitude_account_id"],
            customer_admin=Credentials.from_json(data["customer_admin"]),
            amplitude=Credentials.from_json(data["amplitude"]),
            stranger_admin=Credentials.from_json(data["stranger_admin"]),
        )


@cache
def _shared_loader() -> Loader:
    return create_loader()


# Endpoints of servers running in this process: their backends are ours, so principals are
# created directly rather than over HTTP.
_LOCAL_ENDPOINTS: set[str] = set()


def _is_served_here(endpoint_url: str) -> bool:
    return endpoint_url in _LOCAL_ENDPOINTS


@contextmanager
def served_here(endpoint_url: str) -> Iterator[None]:
    """Mark an endpoint as served by this process for the block (sandbox.server uses it)."""
    _LOCAL_ENDPOINTS.add(endpoint_url)
    try:
        yield
    finally:
        _LOCAL_ENDPOINTS.discard(endpoint_url)


def create_principal(
    account_id: str, name: str, policy: dict[str, Any] | None = None
) -> Credentials:
    """Create an IAM user straight in moto's backend of the account; its access key."""
    backend = iam_backends[account_id][_PARTITION]
    backend.create_user(region_name="us-east-1", user_name=name)
    if policy is not None:
        backend.put_user_policy(name, _POLICY_NAME, json.dumps(policy))
    key = backend.create_access_key(name)
    return Credentials(key.access_key_id, key.secret_access_key)


def remove_principal(account_id: str, name: str, access_key_id: str) -> None:
    """Delete a user `create_principal` made, straight in moto's backend."""
    backend = iam_backends[account_id][_PARTITION]
    if _POLICY_NAME in backend.get_user(name).policies:
        backend.delete_user_policy(name, _POLICY_NAME)
    backend.delete_access_key(access_key_id, name)
    backend.delete_user(name)


def bootstrap(region: str, endpoint_url: str | None) -> MotoWorld:
    """Create the world's principals in moto's backends (no enforcement needed)."""
    return MotoWorld(
        region=region,
        endpoint_url=endpoint_url,
        customer_account_id=DEFAULT_ACCOUNT_ID,
        amplitude_account_id=c.AMPLITUDE_ACCOUNT_ID,
        customer_admin=create_principal(DEFAULT_ACCOUNT_ID, CUSTOMER_ADMIN_NAME, ADMIN_POLICY),
        amplitude=create_principal(c.AMPLITUDE_ACCOUNT_ID, AMPLITUDE_USER_NAME, AMPLITUDE_POLICY),
        stranger_admin=create_principal(STRANGER_ACCOUNT_ID, STRANGER_ADMIN_NAME, ADMIN_POLICY),
    )


@contextmanager
def enforcement() -> Iterator[None]:
    """IAM enforcement on from the next request (moto's process-global settings), then restored."""
    saved = (settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0
    try:
        yield
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = saved


@contextmanager
def clean_aws_env() -> Iterator[None]:
    """Hide the caller's AWS_* settings (profiles, endpoints, keys) and restore them afterwards."""
    hidden = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    with mock.patch.dict(os.environ, _DUMMY_ENV):
        for key in hidden:
            if key not in _DUMMY_ENV:
                del os.environ[key]
        yield


@contextmanager
def moto_world(region: str = "us-east-1") -> Iterator[MotoWorld]:
    """An in-process two-account world, IAM enforced; moto and the environment restored after."""
    with (
        clean_aws_env(),
        mock_aws(),
        iam_gaps.iam_gaps_installed(),
        moto_fixes.moto_fixes_installed(),
    ):
        world = bootstrap(region, endpoint_url=None)
        with enforcement():
            yield world
