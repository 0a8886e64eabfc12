"""Secrets stay secret, and no configuration can widen who gets in or what they may do.

One module-scoped run drives every command against a served world (an external ID configured,
a refused delivery and its replay included) while capturing output, logs and state files; the
tests below then search all of it for every secret the run handled. The generated policies'
lint (parliament) lives in tests/provisioning/test_policies.py.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import logging
import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from moto.sts.models import sts_backends

from provisioning import constants as c
from provisioning.component import CohortDestinationArgs
from provisioning.config import ConsumerConfig, DestinationConfig, parse_config
from provisioning.errors import ConfigError
from provisioning.policies import trust_policy, write_policy
from sandbox.fault_plan import FaultPlan
from sandbox.faults import faults_installed
from sandbox.server import start_server
from sandbox.world import Credentials
from sync.cli import main
from sync.credentials import assume_role_session
from sync.destination import load_destination
from sync.errors import DestinationError, PreflightError
from sync.push import PushReport

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXTERNAL_ID = "ext-Sekret-4242-zz"
WRONG_EXTERNAL_ID = "ext-Guess-0000-qq"
OUR_LOGGERS = ("sync", "provisioning", "sandbox")


@dataclass
class Evidence:
    """Everything one full run printed, logged and wrote, and every secret it handled."""

    tmp: Path
    printed: dict[str, str] = field(default_factory=dict)
    codes: dict[str, int] = field(default_factory=dict)
    records: list[logging.LogRecord] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)

    def leaks(self, text: str | bytes) -> list[str]:
        """The names of the secrets `text` contains."""
        if isinstance(text, bytes):
            return [name for name, value in self.secrets.items() if value.encode() in text]
        return [name for name, value in self.secrets.items() if value in text]


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _run(evidence: Evidence, name: str, args: list[str], env: dict[str, str]) -> None:
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.dict(os.environ), redirect_stdout(out), redirect_stderr(err):
        for key in [k for k in os.environ if k.startswith("AWS_") and k != "AWS_CA_BUNDLE"]:
            del os.environ[key]  # no profile, endpoint or key of the caller's may leak in
        os.environ.update(env)
        evidence.codes[name] = main(args)
    evidence.printed[name] = out.getvalue() + err.getvalue()


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Evidence]:
    tmp = tmp_path_factory.mktemp("security")
    found = Evidence(tmp)
    handler = _Collect(found.records)
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)  # everything anyone logs, botocore's headers included
    try:
        with start_server() as served:
            world = served.world
            world_file = tmp / "world.json"
            world_file.write_text(json.dumps(world.to_json()))
            world_file.chmod(0o600)
            destination = str(tmp / "destination.json")
            base = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
            amplitude = {
                **base,
                "AWS_ACCESS_KEY_ID": world.amplitude.access_key_id,
                "AWS_SECRET_ACCESS_KEY": world.amplitude.secret_access_key,
            }
            customer = {
                **base,
                "AWS_ACCESS_KEY_ID": world.customer_admin.access_key_id,
                "AWS_SECRET_ACCESS_KEY": world.customer_admin.secret_access_key,
            }
            url = ["--endpoint-url", served.url]
            state = ["--state", str(tmp / "state.duckdb")]
            push = ["push", "--destination", destination, "--cohort-id", "sec1"]
            push += ["--cohort-name", "Security", *state, *url]

            _run(
                found,
                "local up",
                [
                    *["local", "up", "--stack", "dev", *url, "--world-file", str(world_file)],
                    *["--out", destination, "--config", f"externalId={EXTERNAL_ID}"],
                ],
                base,
            )
            _run(found, "preflight", ["preflight", "--destination", destination, *url], amplitude)
            # every try refused: the records stay in the outbox for replay
            with faults_installed(FaultPlan.parse("unavailable=1")):
                _run(
                    found,
                    "push refused",
                    [*push, "--max-tries", "1", str(EXAMPLES / "day1.csv")],
                    amplitude,
                )
            _run(found, "replay", ["replay", "--destination", destination, *state, *url], amplitude)
            _run(found, "push --json", [*push, "--json", str(EXAMPLES / "day2.csv")], amplitude)
            _run(
                found,
                "push wrong external id",
                [*push, "--external-id", WRONG_EXTERNAL_ID, str(EXAMPLES / "day1.csv")],
                amplitude,
            )
            consumer = ["--destination", destination, "--state", str(tmp / "consumer.sqlite")]
            _run(
                found,
                "consume",
                ["consume", *consumer, "--from-start", "--until-idle", *url],
                customer,
            )
            _run(
                found,
                "consume --json",
                ["consume", *consumer, "--json", "--until-idle", *url],
                customer,
            )
            _run(
                found,
                "members",
                ["members", "--state", str(tmp / "consumer.sqlite"), "--cohort-id", "sec1"],
                customer,
            )

            dest = load_destination(destination)
            for external_id in (WRONG_EXTERNAL_ID, None):
                try:
                    assume_role_session(
                        world.amplitude.session(world.region),
                        dest.role_arn,
                        session_name="security",
                        external_id=external_id,
                        region=world.region,
                        endpoint_url=served.url,
                    )
                except PreflightError as exc:
                    found.errors.append(exc)
            found.secrets = {
                "customer secret key": world.customer_admin.secret_access_key,
                "amplitude secret key": world.amplitude.secret_access_key,
                "external id": EXTERNAL_ID,
                "wrong external id": WRONG_EXTERNAL_ID,
            }
            for account_id in list(sts_backends):
                for backend in sts_backends[account_id].values():
                    for n, role in enumerate(backend.assumed_roles):
                        found.secrets[f"{account_id} session {n} secret"] = role.secret_access_key
                        found.secrets[f"{account_id} session {n} token"] = role.session_token
    finally:
        root.removeHandler(handler)
        root.setLevel(saved_level)
    yield found


# --- the run went as planned (otherwise the searches below would prove nothing) -----------


def test_the_run_exercised_every_command(evidence: Evidence) -> None:
    assert evidence.codes == {
        "local up": 0,
        "preflight": 0,
        "push refused": 1,
        "replay": 0,
        "push --json": 0,
        "push wrong external id": 2,
        "consume": 0,
        "consume --json": 0,
        "members": 0,
    }
    assert "NOT DELIVERED" in evidence.printed["push refused"]
    assert '"ok": true' in evidence.printed["push --json"]
    assert sum("session" in name for name in evidence.secrets) >= 4  # sessions were issued


# --- output --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        "local up",
        "preflight",
        "push refused",
        "replay",
        "push --json",
        "push wrong external id",
        "consume",
        "consume --json",
        "members",
    ],
)
def test_no_command_prints_a_secret(evidence: Evidence, command: str) -> None:
    assert evidence.leaks(evidence.printed[command]) == []


def test_a_wrong_external_id_is_reported_without_its_value(evidence: Evidence) -> None:
    printed = evidence.printed["push wrong external id"]

    assert "cannot assume role" in printed
    assert "(with an external ID)" in printed


def test_local_up_writes_the_external_id_only_to_the_0600_outputs_file(evidence: Evidence) -> None:
    outputs = evidence.tmp / "destination.json"

    assert stat.S_IMODE(outputs.stat().st_mode) == 0o600
    assert json.loads(outputs.read_text())[c.OUTPUT_EXTERNAL_ID] == EXTERNAL_ID
    assert re.search(rf'{c.OUTPUT_EXTERNAL_ID} +: "\[secret\]"', evidence.printed["local up"])


def test_local_up_tells_how_to_load_the_served_credentials_without_printing_them(
    evidence: Evidence,
) -> None:
    printed = evidence.printed["local up"]
    exports = [line.strip() for line in printed.splitlines() if "AWS_SECRET_ACCESS_KEY" in line]
    venv_bin = str(Path(sys.executable).parent)

    # GIVEN the two export lines, which name the world file instead of holding a key
    assert len(exports) == 2
    assert all(str(evidence.tmp / "world.json") in line for line in exports)
    assert evidence.leaks(printed) == []

    # WHEN a shell runs them, THEN they set the served principals' secret keys
    loaded = [
        subprocess.run(
            ["bash", "-c", f'{line}; printf %s "$AWS_SECRET_ACCESS_KEY"'],
            env={"PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for line in exports
    ]
    assert loaded == [
        evidence.secrets["amplitude secret key"],
        evidence.secrets["customer secret key"],
    ]
    assert shlex.split(exports[0])[0] == "export"


# --- reports, reprs and exceptions -----------------------------------------------------------


def test_push_report_render_and_json_hold_no_secret(evidence: Evidence) -> None:
    report = json.loads(evidence.printed["push --json"])
    rebuilt = PushReport(**{k: v for k, v in report.items() if k != "ok"})

    assert evidence.leaks(rebuilt.render()) == []
    assert evidence.leaks(json.dumps(rebuilt.to_json())) == []


def test_reprs_hide_secrets(evidence: Evidence) -> None:
    destination = load_destination(evidence.tmp / "destination.json")
    config = parse_config({c.CONFIG_EXTERNAL_ID: EXTERNAL_ID}, "dev")
    creds = Credentials("AKIAEXAMPLE", "secret-key-value", "session-token-value")

    assert destination.external_id == EXTERNAL_ID
    assert config.external_id == EXTERNAL_ID
    assert evidence.leaks(repr(destination) + str(destination)) == []
    assert evidence.leaks(repr(config) + str(config)) == []
    assert "secret-key-value" not in repr(creds)
    assert "session-token-value" not in repr(creds)
    session = creds.session("us-east-1")
    assert "secret-key-value" not in repr(session)
    assert "session-token-value" not in repr(session)


@pytest.mark.parametrize(
    "raise_it",
    [
        lambda: parse_config({c.CONFIG_EXTERNAL_ID: EXTERNAL_ID + "*"}, "dev"),
        lambda: parse_config({c.CONFIG_EXTERNAL_ID: EXTERNAL_ID + " " * 2 + "!"}, "dev"),
    ],
    ids=["wildcard", "bad character"],
)
def test_a_rejected_external_id_is_described_by_its_length_only(raise_it: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        raise_it()

    assert EXTERNAL_ID not in str(caught.value)
    assert EXTERNAL_ID not in repr(caught.value)
    assert "externalId (secret, " in str(caught.value)


def test_a_destination_file_with_a_bad_external_id_names_its_type_only(tmp_path: Path) -> None:
    good = {
        "streamName": "s",
        "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
        "region": "us-east-1",
        "roleArn": "arn:aws:iam::123456789012:role/r",
        "roleName": "r",
        "policyArn": "arn:aws:iam::123456789012:policy/p",
        "destination": {
            "display_name": "d",
            "stream_name": "s",
            "aws_region": "us-east-1",
            "role_arn": "arn:aws:iam::123456789012:role/r",
        },
    }
    path = tmp_path / "destination.json"
    path.write_text(json.dumps({**good, c.OUTPUT_EXTERNAL_ID: [EXTERNAL_ID]}))

    with pytest.raises(DestinationError) as caught:
        load_destination(path)

    assert "externalId (list): must be a non-empty string" in str(caught.value)
    assert EXTERNAL_ID not in str(caught.value)


def test_assume_role_errors_hold_no_secret(evidence: Evidence) -> None:
    # GIVEN the two refusals the run provoked: a wrong external ID, and none at all
    messages = [str(error) for error in evidence.errors]

    assert len(messages) == 2
    assert "(with an external ID)" in messages[0]
    assert "(without an external ID)" in messages[1]
    for error in evidence.errors:
        chain = [error, error.__cause__, error.__context__]
        assert evidence.leaks(" ".join(f"{e!s} {e!r}" for e in chain if e is not None)) == []


# --- logs ----------------------------------------------------------------------------------


def test_our_code_logs_no_secret_even_at_debug(evidence: Evidence) -> None:
    ours = [r for r in evidence.records if r.name.split(".")[0] in OUR_LOGGERS]
    messages = [record.getMessage() for record in ours]

    # GIVEN the product logged where it handles secrets: assuming the role with and without the
    # external ID (the keys it was issued), and preflight's checks
    assert any("with an external ID" in m for m in messages if m.startswith("assuming role"))
    assert any(m.startswith("assumed role") for m in messages)
    assert any(m.startswith("preflight of") for m in messages)
    # THEN no line holds one of the secrets the run handled
    assert {name for m in messages for name in evidence.leaks(m)} == set()


def test_botocore_at_debug_would_log_secrets_so_the_capture_is_real(evidence: Evidence) -> None:
    # botocore logs request headers and bodies at DEBUG: the session token and the ExternalId
    # parameter. This is why nothing here may turn DEBUG on by default (next test).
    leaked = {
        name
        for record in evidence.records
        if record.name.startswith("botocore")
        for name in evidence.leaks(record.getMessage())
    }

    assert "external id" in leaked or any("token" in name for name in leaked)


def test_commands_leave_logging_as_they_found_it(evidence: Evidence, tmp_path: Path) -> None:
    # The CLI never configures logging: DEBUG (and botocore's headers) stays opt-in.
    root, botocore = logging.getLogger(), logging.getLogger("botocore")
    before = (root.level, list(root.handlers), botocore.level, list(botocore.handlers))
    dry_run = ["push", "--dry-run", "--destination", str(evidence.tmp / "destination.json")]
    dry_run += ["--cohort-id", "dry", "--cohort-name", "Dry", "--state", str(tmp_path / "s.db")]

    with redirect_stdout(io.StringIO()) as out, redirect_stderr(io.StringIO()):
        code = main([*dry_run, str(EXAMPLES / "day1.csv")])

    assert code == 0
    assert "dry run (nothing sent)" in out.getvalue()
    assert (root.level, list(root.handlers), botocore.level, list(botocore.handlers)) == before


# --- state files ---------------------------------------------------------------------------


def test_state_files_hold_no_secret(evidence: Evidence) -> None:
    written = [
        path
        for path in evidence.tmp.iterdir()
        if path.name not in {"world.json", "destination.json"} and path.is_file()
    ]
    names = {path.name for path in written}

    assert "state.duckdb" in names and "consumer.sqlite" in names
    for path in written:
        assert evidence.leaks(path.read_bytes()) == [], path.name


# --- configuration cannot widen access -------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "principals",
        "trustedPrincipals",
        "additionalPrincipals",
        "trustedAccountIds",
        "actions",
        "extraActions",
        "policy",
        "policyDocument",
        "trustPolicy",
        "assumeRolePolicy",
        "inlinePolicies",
        "managedPolicyArns",
        "resources",
    ],
)
def test_no_config_key_adds_a_principal_action_or_policy(key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({key: "*"}, "dev")

    assert f"{key}: unknown key" in str(caught.value)


def test_the_component_takes_no_policy_document_principal_or_action() -> None:
    # The component's inputs (from Python or any other language) are DestinationConfig's fields,
    # validated by parse_config inside the component. Each is a name, a pattern-checked ARN or
    # account ID (tested above), a number or a tag: none can carry a statement, a principal or
    # an action into a policy. The day-2 fields are a flag, a pattern-checked policy name, import
    # IDs that must equal the declared names, and a pattern-checked policy ARN: none reaches a
    # policy document either; kms_key_cross_account is a flag that lifts an account check on a
    # pattern-checked key ARN. (`consumer` is the Lambda consumer's, a component of its own.)
    args_fields = set(CohortDestinationArgs.__annotations__)
    config_fields = {f.name for f in dataclasses.fields(DestinationConfig)} - {"consumer"}

    assert (
        args_fields
        == config_fields
        == {
            "stream_name",
            "stream_mode",
            "shard_count",
            "retention_hours",
            "encryption",
            "kms_key_arn",
            "kms_key_cross_account",
            "role_name",
            "role_path",
            "max_session_seconds",
            "permissions_boundary_arn",
            "trusted_account_id",
            "external_id",
            "display_name",
            "tags",
            "protect_stream",
            "policy_name",
            "import_stream",
            "import_role",
            "import_policy",
        }
    )
    # the consumer block is numbers, a choice of architecture, a switch and a file path: the
    # function role's documents come from the ARNs of the resources the program declares
    consumer_fields = {f.name: f.type for f in dataclasses.fields(ConsumerConfig)}
    assert consumer_fields == {
        "archive_path": "str",
        "memory_mb": "int",
        "timeout_seconds": "int",
        "reserved_concurrency": "int | None",
        "batch_size": "int",
        "batching_window_seconds": "int",
        "parallelization_factor": "int",
        "max_retries": "int",
        "max_record_age_seconds": "int",
        "log_retention_days": "int",
        "architecture": "str",
        "alarms": "bool",
    }
    # and the policy builders take strings for one account, one stream, one role, one key
    assert list(inspect.signature(trust_policy).parameters) == [
        "trusted_account_id",
        "external_id",
    ]
    assert list(inspect.signature(write_policy).parameters) == [
        "stream_arn",
        "role_arn",
        "kms_key_arn",
    ]


@pytest.mark.parametrize("path", ["/*/", "/team?/", "/${aws:username}/", "/a/*/b/"])
def test_a_role_path_cannot_put_a_wildcard_into_the_write_policy(path: str) -> None:
    # The role ARN, path included, is the Resource of the policy's SimulateOwnPolicy statement.
    with pytest.raises(ConfigError) as caught:
        parse_config({c.CONFIG_ROLE_PATH: path}, "dev")

    assert f"{c.CONFIG_ROLE_PATH} {path!r}: '*', '?' and '$' are not allowed" in str(caught.value)
