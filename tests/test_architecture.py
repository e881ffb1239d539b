"""The dependency direction holds: pipelines -> emulator; data and models stay low."""

import ast
from pathlib import Path

import pytest

LOW_LEVEL = ["emulator/data", "emulator/models", "emulator/grid.py", "emulator/spectra.py"]
FORBIDDEN_FOR_LOW_LEVEL = ("emulator.training", "emulator.io", "emulator.forecast", "emulator.cli", "emulator.plotting")


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def python_files(root: str) -> list[Path]:
    path = Path(root)
    return [path] if path.is_file() else sorted(path.rglob("*.py"))


@pytest.mark.parametrize("path", python_files("emulator"), ids=str)
def test_library_never_imports_pipelines(path: Path) -> None:
    assert not {name for name in imports(path) if name.split(".")[0] == "pipelines"}


@pytest.mark.parametrize("path", [p for root in LOW_LEVEL for p in python_files(root)], ids=str)
def test_data_and_models_never_import_training_or_writers(path: Path) -> None:
    assert not {name for name in imports(path) if name.startswith(FORBIDDEN_FOR_LOW_LEVEL)}
