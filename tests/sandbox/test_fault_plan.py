"""sandbox.fault_plan: the spec grammar, parsed, printed back and refused with every problem."""

import pytest

from sandbox.fault_plan import FaultPlan, FaultSpecError, Rate, Schedule

pytestmark = pytest.mark.unit


def test_parse_reads_every_key() -> None:
    plan = FaultPlan.parse(
        "throughput=on, scale=50, seed=7, targets=write+GetRecords, expire-after-s=30,"
        "record-internal=0.01, throttle=@3+7+10-20, timeout-landed=@40-, delete-stream=@99"
    )

    assert plan.throughput is True
    assert plan.scale == 50
    assert plan.seed == 7
    assert plan.targets == {"PutRecord", "PutRecords", "GetRecords"}
    assert plan.expire_after_seconds == 30
    assert plan.record_internal == Rate(0.01)
    assert plan.throttle == Schedule(((3, 3), (7, 7), (10, 20)))
    assert plan.timeout_landed == Schedule(((40, None),))
    assert plan.delete_stream == Schedule(((99, 99),))


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "throughput=on,scale=50,record-internal=0.01,throttle=0.02,timeout-landed=0.005,seed=7",
        "targets=all,kms-throttle=@1-3+9-,detach-policy=@5,expired-token=@2",
        "targets=read,unavailable=1,internal=0,reset=@4,reset-landed=0.5,timeout=@1",
    ],
)
def test_spec_round_trips(spec: str) -> None:
    plan = FaultPlan.parse(spec)

    assert FaultPlan.parse(plan.to_spec()) == plan


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("throttle", "'throttle': expected key=value"),
        ("throtle=0.1", "throtle='0.1': unknown key; known: throughput, scale"),
        ("throttle=1.5", "throttle='1.5': a rate is a number from 0 to 1"),
        ("throttle=often", "throttle='often': a rate is a number from 0 to 1, or a schedule"),
        ("throttle=@0", "throttle='@0': a schedule is '@' then N, N-M or N- joined by '+'"),
        ("throttle=@5-2", "throttle='@5-2': a schedule is '@'"),
        ("throttle=@3,throttle=@4", "throttle='@4': throttle is given more than once"),
        ("delete-stream=0.5", "delete-stream='0.5': an action takes a schedule, not a rate"),
        ("throughput=yes", "throughput='yes': must be on or off"),
        ("scale=0", "scale='0': must be a number > 0"),
        ("scale=inf", "scale='inf': must be a number > 0"),
        ("seed=x", "seed='x': must be an integer"),
        ("expire-after-s=-1", "expire-after-s='-1': must be model seconds >= 0"),
        ("targets=PutThings", "targets='PutThings': must be write, read, all or Kinesis"),
    ],
)
def test_spec_errors_name_key_value_and_rule(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as exc:
        FaultPlan.parse(spec)

    assert message in str(exc.value)


def test_spec_reports_every_problem_at_once() -> None:
    with pytest.raises(FaultSpecError) as exc:
        FaultPlan.parse("throttle=2,seed=x,nope=1")

    assert [problem.split("=")[0] for problem in exc.value.problems] == ["throttle", "seed", "nope"]


def test_plan_built_directly_is_validated_too() -> None:
    with pytest.raises(FaultSpecError, match=r"detach-policy='0.5': an action takes a schedule"):
        FaultPlan(detach_policy=Rate(0.5))  # type: ignore[arg-type]
