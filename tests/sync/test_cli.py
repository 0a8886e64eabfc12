"""The CLI's own behaviour in a moto world: preflight, watch cadences, consume and members."""

import itertools
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from sandbox.engine.runner import PROGRAM_DIR
from sandbox.pytest_plugin import AppliedDestination
from sandbox.world import Credentials
from sync import commands
from sync.cli import build_parser, main

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def destination_file(cohort_destination: AppliedDestination, tmp_path: Path) -> Path:
    path = tmp_path / "destination.json"
    path.write_text(json.dumps(cohort_destination.outputs))
    return path


def act_as(monkeypatch: pytest.MonkeyPatch, who: Credentials) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", who.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", who.secret_access_key)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def push_args(destination: Path, state: Path, snapshot: str) -> list[str]:
    return [
        "--destination",
        str(destination),
        "--state",
        str(state),
        "--cohort-id",
        "gs72ns",
        "--cohort-name",
        "Test Cohort",
        str(EXAMPLES / snapshot),
    ]


def test_preflight_passes_for_amplitude(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    act_as(monkeypatch, cohort_destination.world.amplitude)

    assert main(["preflight", "--destination", str(destination_file)]) == 0

    out = capsys.readouterr().out
    assert out.count("PASS") == 4
    assert "kinesis:PutRecords on arn:aws:kinesis:us-east-1:123456789012:stream/" in out


def test_preflight_fails_for_a_stranger(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    act_as(monkeypatch, cohort_destination.world.customer_admin)

    assert main(["preflight", "--destination", str(destination_file)]) == 2

    err = capsys.readouterr().err
    assert "cohort-sync: error:" in err
    assert "AccessDenied" in err
    assert "arn:aws:iam::123456789012:role/amplitude-kinesis-cohort" in err


def test_watch_pushes_each_tick_then_consume_and_members(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a watch over a snapshot file that changes between ticks
    snapshot = tmp_path / "cohort.csv"
    snapshot.write_text((EXAMPLES / "day1.csv").read_text())
    # and an injected clock that reads 12.5 s later each time: every push takes 12.5 s
    sleeps: list[float] = []
    readings = itertools.count(0.0, 12.5)

    def next_day(seconds: float) -> None:
        sleeps.append(seconds)
        snapshot.write_text((EXAMPLES / "day2.csv").read_text())

    clock = SimpleNamespace(monotonic=lambda: next(readings), sleep=next_day)
    monkeypatch.setattr(commands, "time", clock)
    act_as(monkeypatch, cohort_destination.world.amplitude)
    state = tmp_path / "state.duckdb"
    args = [*push_args(destination_file, state, "unused")[:-1], str(snapshot)]

    # WHEN it runs two hourly ticks
    assert main(["watch", *args, "--every", "1h", "--ticks", "2", "--json"]) == 0

    # THEN the first tick sent the whole cohort and the second only the changes
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["entered"], r["exited"]) for r in reports] == [(6, 0), (3, 2)]
    # AND it slept the rest of the hour once: the cadence counts from each tick's start
    assert sleeps == [3600 - 12.5]

    # AND the customer, with their own credentials, consumes exactly day 2
    act_as(monkeypatch, cohort_destination.world.customer_admin)
    consumer_state = tmp_path / "consumer.sqlite"
    consume = ["consume", "--destination", str(destination_file), "--state", str(consumer_state)]
    assert main([*consume, "--from-start", "--until-idle", "--json"]) == 0
    consumed = json.loads(capsys.readouterr().out)
    assert consumed["applied"] == 3 and consumed["quarantined"] == 0
    members = ["members", "--state", str(consumer_state), "--cohort-id", "gs72ns"]
    assert main([*members, "--format", "csv"]) == 0
    printed = capsys.readouterr().out
    # THEN members prints the day-2 snapshot itself, ready to be pushed again
    assert printed == (EXAMPLES / "day2.csv").read_text()


def test_real_time_refuses_cohorts_over_amplitudes_limit(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The limit is 1,000,000 users; a smaller one exercises the same rule without the data.
    monkeypatch.setattr(commands, "REAL_TIME_MAX_COHORT_USERS", 5)
    act_as(monkeypatch, cohort_destination.world.amplitude)
    args = push_args(destination_file, tmp_path / "state.duckdb", "day1.csv")

    assert main(["watch", *args, "--every", "1m", "--ticks", "1"]) == 2

    err = capsys.readouterr().err
    assert "6 users; real-time sync supports at most 5 users (Amplitude's limit)" in err
    assert "use --every 1h or --allow-large-realtime" in err
    assert main(["watch", *args, "--every", "1m", "--ticks", "1", "--allow-large-realtime"]) == 0


def test_members_without_state_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.sqlite"

    assert main(["members", "--state", str(missing), "--cohort-id", "x"]) == 2

    assert f"--state {missing}: no such consumer state file; run `consume` first" in (
        capsys.readouterr().err
    )


def test_shards_paces_push_from_the_start_and_must_be_a_positive_count(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    act_as(monkeypatch, cohort_destination.world.amplitude)
    args = push_args(destination_file, tmp_path / "state.duckdb", "day1.csv")

    # GIVEN the stream's shard count, a dry run parses and runs, and delivery would use it
    assert main(["push", *args, "--shards", "2", "--dry-run"]) == 0
    parsed = build_parser().parse_args(["push", *args, "--shards", "2", "--dry-run"])
    assert commands._options(parsed).shards == 2
    capsys.readouterr()

    # WHEN the count is not a positive whole number THEN it is refused (argparse refuses what
    # is not a number, the options object what is out of range), naming it
    for bad in ("0", "-1"):
        assert main(["push", *args, "--shards", bad, "--dry-run"]) == 2
        err = capsys.readouterr().err
        assert f"--shards {bad}: must be a whole number from 1 to 10,000" in err
    with pytest.raises(SystemExit) as refused:
        main(["push", *args, "--shards", "two", "--dry-run"])
    assert refused.value.code == 2
    assert "argument --shards: 'two': need a whole number" in capsys.readouterr().err


def test_resend_all_sends_the_whole_cohort_again(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN day 1 delivered, and day 2's snapshot next
    act_as(monkeypatch, cohort_destination.world.amplitude)
    state = tmp_path / "state.duckdb"
    assert main(["push", *push_args(destination_file, state, "day1.csv"), "--json"]) == 0
    capsys.readouterr()
    day2 = push_args(destination_file, state, "day2.csv")

    # WHEN day 2 is pushed with --resend-all (first as a dry run)
    assert main(["push", *day2, "--resend-all", "--dry-run", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert main(["push", *day2, "--resend-all", "--json"]) == 0
    sent = json.loads(capsys.readouterr().out)

    # THEN every day-2 user enters again, and the two who left still exit
    assert (planned["entered"], planned["exited"], planned["records"]) == (7, 2, 0)
    assert (sent["entered"], sent["exited"], sent["messages"]) == (7, 2, 2)
    assert sent["ok"] is True


def _world_file(path: Path) -> Path:
    fake = Credentials("AKIAFAKE", "fake-secret")
    path.write_text(
        json.dumps(
            {
                "region": "us-east-1",
                "endpoint_url": None,
                "customer_account_id": "123456789012",
                "amplitude_account_id": "358203115967",
                "customer_admin": fake.to_json(),
                "amplitude": fake.to_json(),
                "stranger_admin": fake.to_json(),
            }
        )
    )
    return path


def test_local_up_against_an_unreachable_endpoint_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a world file but nothing listening at the endpoint
    world_file = _world_file(tmp_path / "world.json")
    endpoint = "http://127.0.0.1:9"

    # WHEN local up applies there THEN it refuses with exit 2, naming the endpoint, no traceback
    status = main(["local", "up", "--endpoint-url", endpoint, "--world-file", str(world_file)])

    assert status == 2
    err = capsys.readouterr().err
    # (the plan reads the account before anything is created)
    assert err.startswith("cohort-sync: error: reading the caller's account")
    assert f'Could not connect to the endpoint URL: "{endpoint}/"' in err


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        ("{not json", "not valid JSON"),
        ('{"region": "us-east-1"}', "missing 'customer_account_id'"),
    ],
)
def test_local_up_with_a_broken_world_file_names_it(
    tmp_path: Path, content: str, rule: str, capsys: pytest.CaptureFixture[str]
) -> None:
    world_file = tmp_path / "world.json"
    world_file.write_text(content)

    status = main(
        ["local", "up", "--endpoint-url", "http://127.0.0.1:9", "--world-file", str(world_file)]
    )

    assert status == 2
    err = capsys.readouterr().err
    assert f"cohort-sync: error: --world-file {world_file}: {rule}" in err
    assert f"`cohort-sync local serve --world-file {world_file}` writes it" in err


def test_local_up_help_names_its_real_default_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["local", "up", "--help"])

    # The option's own help follows its last mention (the first is in the usage line).
    endpoint_help = " ".join(
        capsys.readouterr().out.split("--endpoint-url ENDPOINT_URL")[-1].split()
    )
    # Without an endpoint, local up never touches AWS: it applies to an embedded moto.
    assert "AWS itself" not in endpoint_help
    assert "else an embedded moto" in endpoint_help


@pytest.mark.parametrize("day2_time", [1_699_999_999, 1_700_000_000])
def test_a_push_consumers_would_ignore_is_refused(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    day2_time: int,
) -> None:
    # GIVEN day 1 pushed at a fixed computed_time
    act_as(monkeypatch, cohort_destination.world.amplitude)
    state = tmp_path / "state.duckdb"
    day1 = push_args(destination_file, state, "day1.csv")
    assert main(["push", *day1, "--computed-time", "1700000000"]) == 0
    capsys.readouterr()

    # WHEN day 2, which changes membership, claims an earlier or equal time
    day2 = push_args(destination_file, state, "day2.csv")
    status = main(["push", *day2, "--computed-time", str(day2_time)])

    # THEN it is refused before anything is staged, saying why and what to do
    assert status == 2
    err = capsys.readouterr().err
    assert f"computed_time {day2_time}: not after cohort gs72ns's last sync (1700000000)" in err
    assert "use a time after 1700000000" in err
    # AND the same snapshot again at the same time (nothing to send) is fine: a resumed push
    assert main(["push", *day1, "--computed-time", "1700000000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["messages"] == 0


def test_a_failing_preflight_exits_1_and_a_push_behind_it_exits_2(
    cohort_destination: AppliedDestination,
    destination_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the write policy detached from the role
    world, outputs = cohort_destination.world, cohort_destination.outputs
    world.client("iam", world.customer_admin).detach_role_policy(
        RoleName=outputs["roleName"], PolicyArn=outputs["policyArn"]
    )
    act_as(monkeypatch, world.amplitude)

    # WHEN preflight runs, THEN it prints FAIL and exits 1; a push refuses to start, exiting 2
    assert main(["preflight", "--destination", str(destination_file)]) == 1
    assert "FAIL iam:SimulatePrincipalPolicy" in capsys.readouterr().out
    push = push_args(destination_file, tmp_path / "state.duckdb", "day1.csv")
    assert main(["push", *push]) == 2
    assert "cohort-sync: error: preflight failed:" in capsys.readouterr().err


def test_local_up_of_a_stack_without_its_file_says_which_file_and_how_to_fix_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["local", "up", "--stack", "prod"])

    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith("cohort-sync: error: ")
    assert f"--stack prod: {PROGRAM_DIR / 'Pulumi.prod.yaml'} does not exist" in err
    assert "`pulumi stack init prod`" in err and "pick an existing stack (dev, " in err
    assert "Traceback" not in err


def test_local_up_runs_the_project_dirs_program_with_its_stack_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a customer's project directory: their Pulumi.yaml, stack file and program
    shutil.copy(PROGRAM_DIR / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    program = (PROGRAM_DIR / "__main__.py").read_text()
    (tmp_path / "__main__.py").write_text(program + '\npulumi.export("owner", "customer")\n')
    (tmp_path / "Pulumi.staging.yaml").write_text(
        "config:\n  aws:region: eu-west-1\n  amplitude-kinesis-cohort:streamName: staging-cohorts\n"
    )
    out = tmp_path / "destination.json"

    # WHEN local up runs with --project-dir
    argv = ["local", "up", "--project-dir", str(tmp_path), "--stack", "staging", "--out", str(out)]
    status = main(argv)

    # THEN their program ran with their stack's config
    assert status == 0, capsys.readouterr()
    outputs = json.loads(out.read_text())
    assert (outputs["streamName"], outputs["region"], outputs["owner"]) == (
        "staging-cohorts",
        "eu-west-1",
        "customer",
    )
