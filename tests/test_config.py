from pathlib import Path

import pytest
import yaml

from emulator.config import load_config
from emulator.errors import EmulatorError


def write(tmp_path: Path, tree: dict) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


BASE = {"data": {"store": "x.zarr", "prognostic": ["geopotential@500"]}, "model": {"name": "sfno"}}


def test_shipped_configs_load() -> None:
    for path in sorted(Path("configs").glob("*.yaml")):
        config = load_config(path)
        assert config.data.prognostic, path


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "train": {"learning_rat": 1e-3}})
    with pytest.raises(EmulatorError, match=r"config\.yaml: train\.learning_rat: unknown key"):
        load_config(path)


def test_bad_value_names_key(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "train": {"batch_size": -1}})
    with pytest.raises(EmulatorError, match=r"train\.batch_size"):
        load_config(path)


def test_unknown_model_name_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "model": {"name": "transformer9000"}})
    with pytest.raises(EmulatorError, match=r"model"):
        load_config(path)


def test_override_sets_nested_value_parsed_as_yaml(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, BASE), ["train.learning_rate=1e-4", "model.num_layers=2"])
    assert config.train.learning_rate == pytest.approx(1e-4)
    assert config.model.num_layers == 2


def test_malformed_override_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match=r"section\.key=value"):
        load_config(write(tmp_path, BASE), ["train.learning_rate"])
    with pytest.raises(EmulatorError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_yaml_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(EmulatorError, match="not valid YAML"):
        load_config(path)


def test_world_interval_must_be_whole_solver_steps(tmp_path: Path) -> None:
    path = write(tmp_path, {**BASE, "world": {"output_interval_hours": 1, "physics": {"dt_seconds": 700}}})
    with pytest.raises(EmulatorError, match="whole number"):
        load_config(path)


def test_unquoted_timestamps_stay_iso_strings(tmp_path: Path) -> None:
    path = tmp_path / "times.yaml"
    path.write_text(
        "data: {store: x, prognostic: [a], train_period: [2000-01-01, 2000-02-01T06:00:00]}\nmodel: {name: sfno}\n"
    )
    config = load_config(path, ["forecast.init_time=2000-01-05"])
    assert config.forecast.init_time == "2000-01-05"
    assert config.data.train_period == ("2000-01-01", "2000-02-01T06:00:00")
