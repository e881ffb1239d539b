from pathlib import Path

import pytest
import yaml

from emulator.checkpoint import load_checkpoint
from emulator.config import ClimateConfig, load_config
from emulator.errors import EmulatorError
from emulator.stochastic import ForcingBand


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


def test_climate_runs_take_the_stepper_s_forcing_else_the_config_s_else_the_trained_one() -> None:
    trained = load_checkpoint("checkpoints/world_sfno.ckpt").config
    windows = trained.stepper.stochastic_forcing
    config = load_config("configs/world.yaml")
    climate = config.climate.stochastic_forcing
    assert windows is not None and climate is not None and config.stepper.stochastic_forcing is None
    assert trained.train.free_run_stepper is None
    assert config.climate_stepper(trained) == config.stepper.model_copy(update={"stochastic_forcing": climate})
    untuned = config.model_copy(update={"climate": ClimateConfig()})
    assert untuned.climate_stepper(trained).stochastic_forcing == windows
    planetary = windows.model_copy(update={"more_bands": [ForcingBand(min_degree=1, max_degree=3)]})
    free_runs = config.stepper.model_copy(update={"stochastic_forcing": planetary})
    train = trained.train.model_copy(update={"free_run_stepper": free_runs})
    trained_free = trained.model_copy(update={"train": train})
    assert untuned.climate_stepper(trained_free).stochastic_forcing == planetary
    assert config.climate_stepper(trained_free).stochastic_forcing == climate
    given = config.model_copy(update={"stepper": config.stepper.model_copy(update={"stochastic_forcing": windows})})
    assert given.climate_stepper(trained_free).stochastic_forcing == windows


def test_a_config_extends_another_merging_mappings_and_replacing_the_rest(tmp_path: Path) -> None:
    base = {**BASE, "stepper": {"spectral_filter": {"strength": 0.1}, "conserve": ["a"]}, "forecast": {"lead_steps": 8}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    child = {"extends": "../base.yaml", "stepper": {"conserve": ["b"]}, "forecast": {"init_time": "2000-01-02"}}
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "child.yaml").write_text(yaml.safe_dump(child))
    config = load_config(tmp_path / "nested" / "child.yaml", ["forecast.lead_steps=4"])
    assert config.stepper.spectral_filter is not None and config.stepper.spectral_filter.strength == 0.1
    assert config.stepper.conserve == ["b"]
    assert (config.forecast.init_time, config.forecast.lead_steps) == ("2000-01-02", 4)
    nightly, world = load_config("configs/nightly.yaml"), load_config("configs/world.yaml")
    assert (nightly.stepper, nightly.climate, nightly.data) == (world.stepper, world.climate, world.data)
    assert nightly.forecast.init_time == "latest" and nightly.ensemble.climate_forcing


@pytest.mark.parametrize(
    ("extends", "message"),
    [
        ("missing.yaml", r"a\.yaml: extends: .*missing\.yaml: config file not found"),
        ("b.yaml", r"b\.yaml: extends: .*a\.yaml extends this file in turn"),
        ("a.yaml", r"a\.yaml: extends: .*a\.yaml extends this file in turn"),
        ("[b.yaml]", r"a\.yaml: extends: must be the path of another config"),
    ],
)
def test_a_bad_extends_is_refused_naming_the_file(tmp_path: Path, extends: str, message: str) -> None:
    (tmp_path / "a.yaml").write_text(f"extends: {extends}\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(EmulatorError, match=message):
        load_config(tmp_path / "a.yaml")
