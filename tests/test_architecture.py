"""The three wings: the program and the product never import the sandbox, and the program
imports nothing beyond what `pulumi up` installs (requirements.txt)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = [
    ROOT / "__main__.py",
    ROOT / "component" / "__main__.py",
    *sorted((ROOT / "provisioning").glob("*.py")),
]
PRODUCT = sorted((ROOT / "sync").glob("*.py"))
SANDBOX_AND_TEST_ONLY = {"sandbox", "moto", "tests", "bench", "pytest", "hypothesis"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def top_level(module: str) -> str:
    return module.split(".")[0]


def requirement_closure(names: list[str]) -> set[str]:
    """Top-level import names provided by these distributions and everything they require."""
    seen: set[str] = set()
    modules: set[str] = set()
    pending = list(names)
    while pending:
        name = re.split(r"[\s<>=!~;\[]", pending.pop(), maxsplit=1)[0].lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue  # an optional requirement whose marker is false here
        for requirement in dist.requires or []:
            if "extra ==" not in requirement:
                pending.append(requirement)
        top = dist.read_text("top_level.txt")
        if top:
            modules.update(line.strip() for line in top.splitlines() if line.strip())
        for file in dist.files or []:
            first = file.parts[0]
            if first.endswith(".py"):
                modules.add(first[:-3])
            elif "." not in first and not first.endswith("-info"):
                modules.add(first)
    return modules


def program_requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith(("#", "-"))]


@pytest.mark.parametrize("path", PROGRAM + PRODUCT, ids=lambda p: str(p.relative_to(ROOT)))
def test_program_and_product_never_import_the_sandbox(path: Path) -> None:
    reaching = {m for m in imported_modules(path) if top_level(m) in SANDBOX_AND_TEST_ONLY}

    assert reaching == set(), f"{path.relative_to(ROOT)} imports {sorted(reaching)}"


def test_requirements_txt_installs_the_program_extra_only() -> None:
    # GIVEN what `pulumi up` installs (requirements.txt) and the program extra in pyproject
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    program_extra = {re.split(r"[=<>]", r)[0] for r in extras["optional-dependencies"]["program"]}

    # THEN they name the same distributions, and nothing installs this project itself
    assert set(program_requirements()) == program_extra == {"pulumi", "pulumi-aws"}
    assert "-e ." not in (ROOT / "requirements.txt").read_text().splitlines()


@pytest.mark.parametrize("path", PROGRAM, ids=lambda p: str(p.relative_to(ROOT)))
def test_program_imports_only_what_requirements_txt_installs(path: Path) -> None:
    allowed = requirement_closure(program_requirements()) | {"provisioning"}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}

    outside = {
        m
        for m in imported_modules(path)
        if top_level(m) not in allowed and top_level(m) not in stdlib
    }

    assert outside == set(), f"{path.relative_to(ROOT)} imports {sorted(outside)}"


def test_the_closure_is_not_everything() -> None:
    # The check above is only as strong as the closure is narrow: the product's and the
    # sandbox's packages must fall outside it.
    closure = requirement_closure(program_requirements())

    assert {"pulumi", "pulumi_aws"} <= closure
    assert not {"moto", "duckdb", "boto3", "pyarrow", "msgspec", "aws_lambda_powertools"} & closure


def test_the_import_scan_sees_function_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from sandbox.world import moto_world\n    import moto\n")

    assert imported_modules(module) == {"sandbox.world", "moto"}


# Runs the program as `pulumi up` would (offline, under mocks defined here, since the sandbox's
# engine is not the program's), with every import outside `allowed` refused.
ONLY_ALLOWED_IMPORTS = r"""
import importlib.abc, json, runpy, sys

allowed = set(json.loads(sys.argv[1]))

class OnlyTheProgramsDistributions(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in allowed:
            raise ImportError(f"refused: {name} (requirements.txt does not install it)")
        return None

sys.meta_path.insert(0, OnlyTheProgramsDistributions())

import pulumi
from pulumi.runtime import settings, stack
from pulumi.runtime.sync_await import _sync_await

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        return f"{args.name}-id", {**args.inputs, "arn": f"arn:{args.name}", "name": args.name}

    def call(self, args):
        return {"region": "us-east-1"}

pulumi.runtime.set_mocks(Mocks(), project="amplitude-kinesis-cohort", stack="dev")
runpy.run_path(sys.argv[2], run_name="__main__")
root = settings.get_root_resource()
exported = {k: _sync_await(pulumi.Output.from_input(v).future()) for k, v in root.outputs.items()}
_sync_await(stack.wait_for_rpcs())
loaded = sorted({m.split(".")[0] for m in sys.modules} - set(sys.stdlib_module_names))
print(json.dumps({"outputs": sorted(exported), "loaded": loaded}))
"""


def run_with_only_the_programs_distributions(program: Path) -> subprocess.CompletedProcess[str]:
    allowed = requirement_closure(program_requirements()) | {"provisioning"}
    allowed |= set(sys.stdlib_module_names) | {"__future__"}
    return subprocess.run(
        [sys.executable, "-c", ONLY_ALLOWED_IMPORTS, json.dumps(sorted(allowed)), str(program)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.integration
def test_the_program_runs_with_only_its_distributions_importable() -> None:
    ran = run_with_only_the_programs_distributions(ROOT / "__main__.py")

    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads(ran.stdout.splitlines()[-1])
    assert {"streamName", "roleArn", "policyArn", "destination"} <= set(result["outputs"])
    assert not {"moto", "boto3", "sandbox", "sync", "duckdb", "pyarrow"} & set(result["loaded"])


@pytest.mark.integration
def test_an_import_outside_the_programs_distributions_is_refused(tmp_path: Path) -> None:
    program = tmp_path / "__main__.py"
    program.write_text((ROOT / "__main__.py").read_text() + "\nimport boto3\n")

    ran = run_with_only_the_programs_distributions(program)

    assert ran.returncode != 0
    assert "refused: boto3 (requirements.txt does not install it)" in ran.stderr


# Entry points named outside Python (the Lambda runtime's handler setting, console scripts).
CALLED_FROM_OUTSIDE = {("sync/lambda_handler.py", "handler")}


def test_no_program_or_product_function_exists_only_for_the_tests() -> None:
    # A test oracle lives in tests/ (tests/oracle.py), not in the code it judges.
    code = {
        path: path.read_text()
        for folder in ("sync", "provisioning", "sandbox", "bench", "component", "scripts")
        for path in (ROOT / folder).glob("*.py")
    } | {ROOT / "__main__.py": (ROOT / "__main__.py").read_text()}
    only_tests = []
    for path in PROGRAM + PRODUCT:
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.FunctionDef | ast.ClassDef) or node.name.startswith("_"):
                continue
            if (str(path.relative_to(ROOT)), node.name) in CALLED_FROM_OUTSIDE:
                continue
            word = re.compile(rf"\b{node.name}\b")
            used_in_own_module = len(word.findall(code.get(path, path.read_text()))) > 1
            used_elsewhere = any(word.search(text) for other, text in code.items() if other != path)
            if not used_in_own_module and not used_elsewhere:
                only_tests.append(f"{path.relative_to(ROOT)}:{node.name}")

    assert only_tests == []
