"""`cohort-sync local preview|up|destroy|refresh` end to end against a served world."""

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from provisioning import constants as c
from sandbox.engine import deploy
from sandbox.errors import ApplyError
from sandbox.server import ServedWorld, start_server
from sync.cli import main

pytestmark = pytest.mark.integration
AMPLITUDE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::358203115967:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedWorld]:
    with start_server() as world:
        (tmp_path / "world.json").write_text(json.dumps(world.world.to_json()))
        yield world


class Cli:
    """`cohort-sync local …` in this process, aimed at the served world."""

    def __init__(self, served: ServedWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]):
        self.served = served
        self.tmp = tmp_path
        self.capsys = capsys
        self.state_file = tmp_path / "stacks" / "dev.json"

    def __call__(self, command: str, *extra: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        status = main(
            [
                "local",
                command,
                "--endpoint-url",
                self.served.url,
                "--world-file",
                str(self.tmp / "world.json"),
                *extra,
            ]
        )
        out, err = self.capsys.readouterr()
        return status, out, err

    def json(self, command: str, *extra: str) -> tuple[int, dict[str, Any]]:
        status, out, _ = self(command, "--json", *extra)
        return status, json.loads(out)

    def client(self, service: str) -> Any:
        return self.served.world.client(service, self.served.world.customer_admin)


@pytest.fixture
def cli(served: ServedWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(served, tmp_path, capsys)


def _ops(document: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for step in document["steps"]:
        found.setdefault(step["urn"].rsplit("::", 1)[-1], []).append(step["op"])
    return found


def test_up_records_state_beside_the_world_file_and_reports_steps_as_json(cli: Cli) -> None:
    # (that a second up changes nothing is tests/sandbox/test_deploy.py's, down to the AWS calls)
    status, first = cli.json("up")
    assert status == 0, first
    assert cli.state_file.exists()
    assert first["changeSummary"] == {"create": 5}
    assert {s["op"] for s in first["steps"]} == {"create"}
    assert set(first["steps"][0]) == {"op", "urn", "newState", "detailedDiff"}


def test_preview_json_of_a_change_changes_nothing(cli: Cli) -> None:
    cli("up")
    before = cli.state_file.read_text()

    status, plan = cli.json("preview", "--config", "retentionHours=48")

    assert status == 0
    assert _ops(plan)["cohort-stream"] == ["update"]
    stream = next(s for s in plan["steps"] if s["urn"].endswith("::cohort-stream"))
    assert stream["diffReasons"] == ["retentionPeriod"] and "replaceReasons" not in stream
    assert stream["detailedDiff"] == {"retentionPeriod": {"kind": "update", "inputDiff": True}}
    assert stream["oldState"]["inputs"]["retentionPeriod"] == 24
    assert stream["newState"]["inputs"]["retentionPeriod"] == 48
    assert cli.state_file.read_text() == before
    summary = cli.client("kinesis").describe_stream_summary(StreamName=c.DEFAULT_STREAM_NAME)
    assert summary["StreamDescriptionSummary"]["RetentionPeriodHours"] == 24


def test_renaming_the_stream_prints_the_form_notice_and_needs_yes(cli: Cli) -> None:
    cli("up", "--config", "protectStream=false")

    status, out, err = cli("up", "--config", "protectStream=false", "--config", "streamName=s2")

    assert status == 2
    assert "NOTICE: Amplitude's Stream Name changes from 'amplitude-cohorts' to 's2'" in out
    assert "deliveries fail until the destination form in Amplitude is updated" in out
    assert "would delete-replaced, replace the Kinesis stream" in err or "--yes" in err
    status, done = cli.json(
        "up", "--yes", "--config", "protectStream=false", "--config", "streamName=s2"
    )
    assert status == 0
    assert "replace" in _ops(done)["cohort-stream"]
    assert done["notices"][0] == {
        "field": "Stream Name",
        "from": "'amplitude-cohorts'",
        "to": "'s2'",
    }


def test_destroy_refuses_a_protected_stream_then_deletes_everything(cli: Cli) -> None:
    cli("up")

    status, _, err = cli("destroy")
    assert status == 2
    assert "unable to delete resource" in err and "protectStream false" in err
    assert cli.client("kinesis").list_streams()["StreamNames"] == [c.DEFAULT_STREAM_NAME]

    # lifting the protection changes the state only, and `up` says so
    status, out, _ = cli("up", "--config", "protectStream=false")
    assert status == 0
    assert "Plan: 5 unchanged." in out
    assert "Applied: cohort-stream unprotected (in the state) (5 resources in the stack)." in out
    status, gone = cli.json("destroy", "--config", "protectStream=false")
    assert status == 0
    assert {s["op"] for s in gone["steps"]} == {"delete"}
    assert [s["urn"].rsplit("::", 1)[-1] for s in gone["steps"]][:1] == ["cohort-attach"]
    assert cli.client("kinesis").list_streams()["StreamNames"] == []
    iam = cli.client("iam")
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []


def test_destroy_ends_with_a_completion_line(cli: Cli) -> None:
    cli("up", "--config", "protectStream=false")

    status, out, _ = cli("destroy", "--config", "protectStream=false")

    assert status == 0
    assert out.rstrip().endswith("Destroyed: 5 deleted (0 resources left in the stack).")


def _widen_trust(cli: Cli) -> None:
    wide = {
        **AMPLITUDE_TRUST,
        "Statement": [
            *AMPLITUDE_TRUST["Statement"],
            {
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "sts:AssumeRole",
            },
        ],
    }
    cli.client("iam").update_assume_role_policy(
        RoleName=c.DEFAULT_ROLE_NAME, PolicyDocument=json.dumps(wide)
    )


def _add_statement(cli: Cli, outputs: dict[str, Any]) -> None:
    iam = cli.client("iam")
    arn = outputs[c.OUTPUT_POLICY_ARN]
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]
    statements = document["Document"]["Statement"]
    statements.append(
        {
            "Effect": "Allow",
            "Action": "kinesis:DeleteStream",
            "Resource": outputs[c.OUTPUT_STREAM_ARN],
        }
    )
    iam.create_policy_version(
        PolicyArn=arn, PolicyDocument=json.dumps(document["Document"]), SetAsDefault=True
    )


def test_refresh_reports_drift_field_by_field_and_up_puts_it_back(cli: Cli) -> None:
    cli("up")
    outputs = json.loads(cli.state_file.read_text())["outputs"]
    # GIVEN someone widens the trust policy and adds a statement to the policy by hand
    _widen_trust(cli)
    _add_statement(cli, outputs)

    # WHEN refresh reads the resources back
    status, out, _ = cli("refresh")

    # THEN it names each field, what was recorded and what AWS holds
    assert status == 0
    assert "aws:iam/role:Role  cohort-role: changed outside the engine" in out
    assert "assumeRolePolicy: recorded" in out and "111122223333" in out
    assert "aws:iam/policy:Policy  cohort-write: changed outside the engine" in out
    assert "kinesis:DeleteStream" in out

    # AND up puts back what the program declares, in place
    status, fixed = cli.json("up")
    assert status == 0
    assert _ops(fixed)["cohort-role"] == ["update"] and _ops(fixed)["cohort-write"] == ["update"]
    trust = cli.client("iam").get_role(RoleName=c.DEFAULT_ROLE_NAME)["Role"]
    assert "111122223333" not in json.dumps(trust["AssumeRolePolicyDocument"])
    assert cli.json("refresh")[1]["drift"] == []


def test_refresh_json_lists_each_changed_input(cli: Cli) -> None:
    cli("up")
    _widen_trust(cli)

    status, document = cli.json("refresh")

    assert status == 0
    (drift,) = document["drift"]
    assert drift["urn"].endswith("::cohort-role") and drift["gone"] is False
    (change,) = drift["changes"]
    assert change["input"] == "assumeRolePolicy"
    assert "111122223333" in change["actual"] and "111122223333" not in change["recorded"]


def test_a_stream_deleted_outside_is_reported_then_recreated(cli: Cli) -> None:
    cli("up")
    cli.client("kinesis").delete_stream(StreamName=c.DEFAULT_STREAM_NAME)

    status, out, _ = cli("refresh")
    assert status == 0
    assert "cohort-stream: deleted outside the engine (up re-creates it)" in out

    status, again = cli.json("up")
    assert status == 0
    assert _ops(again)["cohort-stream"] == ["create"]
    assert cli.client("kinesis").list_streams()["StreamNames"] == [c.DEFAULT_STREAM_NAME]


@pytest.mark.parametrize(
    ("verb", "consequence"),
    [
        ("up", "try to create them again"),
        ("preview", "plan to create them again"),
        ("destroy", "delete nothing and record an empty stack"),
        ("refresh", "find no drift and record an empty stack"),
    ],
)
def test_a_missing_state_file_while_the_resources_exist_is_refused(
    cli: Cli, verb: str, consequence: str
) -> None:
    # GIVEN an applied stack whose state file is lost
    cli("up")
    cli.state_file.unlink()

    # WHEN any command runs against it
    status, _, err = cli(verb)

    # THEN it is refused with the file, what it found, the rule and the fix; nothing written
    assert status == 2
    assert f"stack state {cli.state_file}: not found, but resources this stack declares " in err
    assert "aws:kinesis/stream:Stream Kinesis stream 'amplitude-cohorts'" in err
    assert f"so `local {verb}` would {consequence}. Nothing was changed or written." in err
    assert "Fix: pass --state-dir for the directory holding dev.json" in err
    assert "importStream, importRole and importPolicy config keys" in err
    assert "Traceback" not in err
    assert not cli.state_file.exists()
    assert cli.client("kinesis").list_streams()["StreamNames"] == [c.DEFAULT_STREAM_NAME]


def test_commands_on_a_stack_never_applied_write_no_state(cli: Cli) -> None:
    for verb in ("destroy", "refresh"):
        status, _, err = cli(verb)
        assert status == 0, err
    assert not cli.state_file.exists()


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("{not json", "not a readable JSON state file"),
        (
            json.dumps({"version": 1, "project": c.PROJECT_NAME, "stack": "prod", "resources": []}),
            "belongs to project 'amplitude-kinesis-cohort' stack 'prod'",
        ),
        (
            '{"version": 1, "project": "other", "stack": "dev", "resources": []}',
            "belongs to project 'other'",
        ),
        (
            json.dumps(
                {"version": 1, "project": c.PROJECT_NAME, "stack": "dev", "resources": [{}]}
            ),
            "malformed entry",
        ),
    ],
)
def test_a_bad_state_file_is_named_with_the_fix(cli: Cli, content: str, rule: str) -> None:
    cli.state_file.parent.mkdir(parents=True)
    cli.state_file.write_text(content)

    status, _, err = cli("up")
    assert status == 2
    assert f"stack state {cli.state_file}: {rule}" in err
    assert "Traceback" not in err
    status, document = cli.json("preview")
    assert status == 2 and rule in document["error"] and document["steps"] == []
    assert cli.client("kinesis").list_streams()["StreamNames"] == []


def test_adopting_amplitudes_hand_made_destination(cli: Cli) -> None:
    # GIVEN the stream, role and one-statement policy made by hand from Amplitude's guide
    kinesis, iam = cli.client("kinesis"), cli.client("iam")
    kinesis.create_stream(StreamName="cohorts", StreamModeDetails={"StreamMode": "ON_DEMAND"})
    kinesis.put_record(StreamName="cohorts", Data=b'{"before": "adoption"}', PartitionKey="k")
    role = iam.create_role(
        RoleName="amplitude-kinesis", AssumeRolePolicyDocument=json.dumps(AMPLITUDE_TRUST)
    )["Role"]
    stream_arn = kinesis.describe_stream_summary(StreamName="cohorts")["StreamDescriptionSummary"][
        "StreamARN"
    ]
    template = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "kinesis:PutRecord",
                    "kinesis:PutRecords",
                    "iam:SimulatePrincipalPolicy",
                ],
                "Resource": [stream_arn, role["Arn"]],
            }
        ],
    }
    policy = iam.create_policy(
        PolicyName="amplitude-kinesis-write", PolicyDocument=json.dumps(template)
    )["Policy"]
    iam.attach_role_policy(RoleName="amplitude-kinesis", PolicyArn=policy["Arn"])
    adopt = [
        "--config",
        "streamName=cohorts",
        "--config",
        "roleName=amplitude-kinesis",
        "--config",
        "encryption=NONE",
        "--config",
        "protectStream=true",
        "--config",
        "importStream=cohorts",
        "--config",
        "importRole=amplitude-kinesis",
        "--config",
        f"importPolicy={policy['Arn']}",
        "--config",
        "policyName=amplitude-kinesis-write",
    ]

    # WHEN the import keys are set and up runs
    status, plan = cli.json("preview", *adopt)
    assert status == 0, plan
    assert _ops(plan)["cohort-write"] == ["import", "update"]
    status, applied = cli.json("up", *adopt)

    # THEN each is imported, and the hand-made policy is updated to the scoped one in place
    assert status == 0, applied
    ops = _ops(applied)
    assert ops["cohort-stream"] == ["import"]
    assert ops["cohort-role"] == ["import", "update"]  # the program's description
    assert ops["cohort-write"] == ["import", "update"]
    assert ops["cohort-attach"] == ["import"]
    write = next(
        s
        for s in applied["steps"]
        if s["op"] == "update" and s["newState"]["type"] == "aws:iam/policy:Policy"
    )
    assert write["diffReasons"] == ["policy"]
    version = iam.get_policy(PolicyArn=policy["Arn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=version)["PolicyVersion"][
        "Document"
    ]
    assert [s["Resource"] for s in document["Statement"]] == [stream_arn, role["Arn"]]
    assert [s["Sid"] for s in document["Statement"]]  # the program's statements
    # nothing was created beside the hand-made ones, and the stream kept its data
    assert kinesis.list_streams()["StreamNames"] == ["cohorts"]
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["amplitude-kinesis"]
    assert cli.json("up", *adopt)[1]["changeSummary"] == {"same": 5}


def test_the_state_file_never_holds_the_external_id(cli: Cli) -> None:
    status, _, err = cli("up", "--config", "externalId=ext-secret-0042")
    assert status == 0, err

    assert "ext-secret-0042" not in cli.state_file.read_text()
    # and the sealed trust policy still tells a same config from a changed one
    assert cli.json("preview", "--config", "externalId=ext-secret-0042")[1]["changeSummary"] == {
        "same": 5
    }
    _, changed = cli.json("preview", "--config", "externalId=ext-secret-0043")
    assert _ops(changed)["cohort-role"] == ["update"]
    assert "ext-secret" not in json.dumps(changed)


def test_an_import_id_that_matches_nothing_is_refused_before_any_change(cli: Cli) -> None:
    status, document = cli.json("up", "--config", "importStream=amplitude-cohorts")

    assert status == 2
    assert (
        "import ID 'amplitude-cohorts': no such aws:kinesis/stream:Stream exists"
        in document["error"]
    )
    assert cli.client("iam").list_roles()["Roles"] == []
    assert not cli.state_file.exists()


@contextmanager
def _signal_after(nth: int, action: str, signum: signal.Signals) -> Iterator[list[int]]:
    """Raise `signum` in this process once the engine's n-th AWS call starting with `action`
    ("creating ", "deleting ") has returned; yields the count of those calls, as a list of one."""
    count = [0]
    original = deploy.aws_call

    def call_then_signal(what: str, *args: Any, **kwargs: Any) -> Any:
        result = original(what, *args, **kwargs)
        if what.startswith(action):
            count[0] += 1
            if count[0] == nth:
                signal.raise_signal(signum)
        return result

    with mock.patch.object(deploy, "aws_call", call_then_signal):
        yield count


@pytest.mark.parametrize(
    ("after_creates", "signum"),
    [(1, signal.SIGINT), (2, signal.SIGTERM), (3, signal.SIGINT), (4, signal.SIGTERM)],
)
def test_an_interrupted_up_records_what_it_did_and_the_next_up_finishes(
    cli: Cli, after_creates: int, signum: signal.Signals
) -> None:
    # GIVEN an `up` that gets a signal once its n-th resource is created (others may be under
    # way in parallel, as in Pulumi; the main thread handles the signal when it next runs)
    with _signal_after(after_creates, "creating ", signum):
        status, out, err = cli("up")

    # THEN it stops with 130, the state records what was created, the rest is listed as left
    assert status == 130, out + err
    assert f"Interrupted ({signum.name}): stopped after the steps under way" in err
    assert f"recorded in {cli.state_file}" in err
    assert "Run `cohort-sync local up` again to finish." in err
    assert "Traceback" not in err and "Applied" not in out
    recorded = {r["name"] for r in json.loads(cli.state_file.read_text())["resources"]}
    left = {line.split()[2] for line in err.splitlines() if line.startswith("  + ")}
    custom = {"cohort-stream", "cohort-role", "cohort-write", "cohort-attach"}
    assert len(recorded & custom) >= after_creates, (recorded, err)
    assert left == custom - recorded, (recorded, left)
    if after_creates <= 2:
        # the policy and its attachment wait for the stream and the role: never started
        assert left == {"cohort-write", "cohort-attach"}
    assert not (cli.state_file.parent / "dev.lock").exists()

    # WHEN `up` runs again, it finishes the job; a third changes nothing
    status, out, err = cli("up")
    assert status == 0, err
    finished = f"{len(left)} created" if left else "no changes"
    assert f"Applied: {finished} (5 resources in the stack)." in out
    status, out, _ = cli("up")
    assert status == 0 and "Applied: no changes (5 resources in the stack)." in out


@pytest.mark.parametrize(("after_deletes", "signum"), [(1, signal.SIGTERM), (3, signal.SIGINT)])
def test_an_interrupted_destroy_records_what_is_left_and_the_next_destroy_finishes(
    cli: Cli, after_deletes: int, signum: signal.Signals
) -> None:
    # GIVEN an unprotected stack, and a `destroy` that gets a signal after its n-th delete
    unprotected = ("--config", "protectStream=false")
    assert cli("up", *unprotected)[0] == 0
    with _signal_after(after_deletes, "deleting ", signum) as deletes:
        status, out, err = cli("destroy", *unprotected)

    # THEN it stops with 130 after that delete; the state holds exactly what still exists
    assert status == 130, out + err
    assert f"Interrupted ({signum.name}): stopped after the steps under way" in err
    assert "Run `cohort-sync local destroy` again to finish." in err
    assert "Traceback" not in err and "Destroyed" not in out
    recorded = {r["name"] for r in json.loads(cli.state_file.read_text())["resources"]}
    left = {line.split()[2] for line in err.splitlines() if line.startswith("  - ")}
    custom = {"cohort-stream", "cohort-role", "cohort-write", "cohort-attach"}
    assert deletes == [after_deletes]
    assert len(custom - recorded) == after_deletes
    assert left == recorded, (recorded, err)
    streams = cli.client("kinesis").list_streams()["StreamNames"]
    assert ("cohort-stream" in recorded) == (streams == [c.DEFAULT_STREAM_NAME])
    assert not (cli.state_file.parent / "dev.lock").exists()

    # WHEN `destroy` runs again, it deletes the rest; nothing is left in AWS or in the state
    status, out, err = cli("destroy", *unprotected)
    assert status == 0, err
    assert out.rstrip().endswith(f"Destroyed: {len(left)} deleted (0 resources left in the stack).")
    assert cli.client("kinesis").list_streams()["StreamNames"] == []
    assert cli.client("iam").list_roles()["Roles"] == []


def test_a_destroy_that_fails_midway_records_only_what_still_exists(cli: Cli) -> None:
    # GIVEN an unprotected stack whose third delete AWS refuses
    unprotected = ("--config", "protectStream=false")
    assert cli("up", *unprotected)[0] == 0
    deletes = 0
    delete = deploy.aws_call

    def refuse_the_third(what: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal deletes
        if what.startswith("deleting "):
            deletes += 1
            if deletes == 3:
                raise ApplyError(f"{what}: refused")
        return delete(what, *args, **kwargs)

    with mock.patch.object(deploy, "aws_call", refuse_the_third):
        status, _, err = cli("destroy", *unprotected)

    # THEN it fails naming the resource, and the state drops the two it deleted, no more
    assert status != 0 and "refused" in err
    recorded = {r["name"] for r in json.loads(cli.state_file.read_text())["resources"]}
    assert recorded == {"cohort", "cohort-stream", "cohort-role"}  # attachment, policy gone
    # and the next destroy finishes
    assert cli("destroy", *unprotected)[0] == 0
    assert json.loads(cli.state_file.read_text())["resources"] == []


# pulumi/pulumi sdk/pkg/display/json.go and sdk/go/common/apitype/core.go: every field and its
# JSON type; `required` are those without omitempty.
PREVIEW_DIGEST = {
    "config": dict,
    "steps": list,
    "diagnostics": list,
    "duration": int,
    "changeSummary": dict,
    "maybeCorrupt": bool,
}
ENGINE_EXTRAS = {"notices": list, "proof": list}  # this engine's own, beside Pulumi's
PREVIEW_STEP = {
    "op": str,
    "urn": str,
    "provider": str,
    "oldState": dict,
    "newState": dict,
    "diffReasons": list,
    "replaceReasons": list,
    "detailedDiff": (dict, type(None)),
}
PREVIEW_STEP_REQUIRED = {"op", "urn", "detailedDiff"}
RESOURCE_V3 = {
    "urn": str,
    "custom": bool,
    "delete": bool,
    "id": str,
    "type": str,
    "inputs": dict,
    "outputs": dict,
    "parent": str,
    "protect": bool,
    "external": bool,
    "dependencies": list,
    "initErrors": list,
    "provider": str,
    "propertyDependencies": dict,
    "pendingReplacement": bool,
    "additionalSecretOutputs": list,
    "aliases": list,
    "customTimeouts": dict,
}
RESOURCE_V3_REQUIRED = {"urn", "custom", "type"}
STEP_OPS = {
    "same",
    "create",
    "update",
    "delete",
    "replace",
    "create-replacement",
    "delete-replaced",
    "read",
    "read-replacement",
    "refresh",
    "discard",
    "discard-replaced",
    "remove-pending-replace",
    "import",
    "import-replacement",
}
DIFF_KINDS = {"add", "add-replace", "delete", "delete-replace", "update", "update-replace"}


def _typed(document: dict[str, Any], fields: dict[str, Any], required: set[str]) -> None:
    assert required <= set(document), (required, document)
    for key, value in document.items():
        assert key in fields, f"{key!r} is not a field"
        assert isinstance(value, fields[key]), (key, value)


def assert_preview_digest(document: dict[str, Any]) -> None:
    """`document` fits Pulumi's PreviewDigest, PreviewStep, ResourceV3 and PropertyDiff."""
    _typed(document, {**PREVIEW_DIGEST, **ENGINE_EXTRAS}, set())
    assert all(isinstance(v, str) for v in document.get("config", {}).values())
    assert all(isinstance(n, int) for n in document.get("changeSummary", {}).values())
    assert document["duration"] > 0
    for step in document["steps"]:
        _typed(step, PREVIEW_STEP, PREVIEW_STEP_REQUIRED)
        assert step["op"] in STEP_OPS
        for state in ("oldState", "newState"):
            if state in step:
                _typed(step[state], RESOURCE_V3, RESOURCE_V3_REQUIRED)
                assert step[state]["urn"] == step["urn"]
        for diff in (step["detailedDiff"] or {}).values():
            assert set(diff) == {"kind", "inputDiff"} and diff["kind"] in DIFF_KINDS
            assert isinstance(diff["inputDiff"], bool)


def test_preview_json_is_pulumis_preview_digest_with_secrets_blinded(cli: Cli) -> None:
    # GIVEN a stack with an external ID (a secret), applied
    secret = "ext-never-shown-0042"
    status, applied = cli.json("up", "--config", f"externalId={secret}")
    assert status == 0, applied

    # WHEN a change to the stream and to the secret is previewed
    status, plan = cli.json(
        "preview", "--config", f"externalId={secret}-2", "--config", "retentionHours=48"
    )

    # THEN both documents are Pulumi's types, nothing shows the secret, and the steps carry
    # the states and the provider tools read
    assert status == 0, plan
    for document in (applied, plan):
        assert_preview_digest(document)
        assert secret not in json.dumps(document)
    assert plan["config"]["amplitude-kinesis-cohort:externalId"] == "[secret]"
    role = next(s for s in plan["steps"] if s["urn"].endswith("::cohort-role"))
    assert role["op"] == "update"
    assert role["oldState"]["inputs"]["assumeRolePolicy"] == "[secret]"
    assert role["detailedDiff"] == {"assumeRolePolicy": {"kind": "update", "inputDiff": True}}
    assert role["provider"].startswith(
        "urn:pulumi:dev::amplitude-kinesis-cohort::pulumi:providers:aws::default_"
    )
    stream = next(s for s in plan["steps"] if s["urn"].endswith("::cohort-stream"))
    assert stream["newState"]["custom"] is True and stream["newState"]["protect"] is True
    assert stream["newState"]["parent"].endswith("::cohort")
    assert stream["oldState"]["id"].endswith(f":stream/{c.DEFAULT_STREAM_NAME}")
    assert plan["changeSummary"] == {"same": 3, "update": 2}
