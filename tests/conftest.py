"""The suite uses the harness's fixtures exactly as a customer's tests would."""

import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytest_plugins = ["sandbox.pytest_plugin", "pytester"]

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.fixture
def readme_customer_project() -> Callable[[Path, Path], None]:
    """Writes a customer's project as the README's fixture example has it, into a directory."""

    def write(root: Path, program_dir: Path) -> None:
        python = re.findall(r"```python\n(.*?)```", README, flags=re.S)
        yaml_blocks = re.findall(r"```yaml\n(.*?)```", README, flags=re.S)
        stack_file = next(b for b in yaml_blocks if b.startswith("# Pulumi.prod.yaml"))
        (root / "Pulumi.yaml").write_text((program_dir / "Pulumi.yaml").read_text())
        (root / "__main__.py").write_text((program_dir / "__main__.py").read_text())
        (root / "Pulumi.prod.yaml").write_text(stack_file)
        (root / "conftest.py").write_text(next(b for b in python if "pytest_plugins" in b))
        (root / "tests").mkdir()
        test = next(b for b in python if "def test_" in b)
        (root / "tests" / "test_destination.py").write_text(test)

    return write
