"""The demo: built-in world -> forecast with the default checkpoint -> NetCDF, PNGs, scores.

Writes the world's store if it is missing, forecasts from the configured initial
time, writes forecast, spectra and scores NetCDF and two PNGs, and prints their
paths and the 24-hour RMSE next to persistence.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emulator.config import Config
from emulator.errors import EmulatorError
from emulator.evaluation import evaluate_forecast
from emulator.files import atomic_path
from emulator.forecast import RolloutOptions, run_forecast
from emulator.plotting import plot_products
from emulator.world.store import write_world_store

SCORED_LEAD = pd.Timedelta(hours=24)


def run_demo(config: Config, device: str = "auto") -> dict[str, Path]:
    """Run the whole chain on ``config``; return the products by name."""
    store = Path(config.data.store)
    if not store.exists():
        if config.world is None:
            raise EmulatorError(f"{store}: no store, and the config has no world: section to simulate one")
        write_world_store(config.world, store)
    products = run_forecast(config, RolloutOptions(device=device))
    out_dir = Path(config.forecast.output_dir)
    for index, path in enumerate(plot_products(products["forecast"], products["spectra"], out_dir / "plots")):
        products[f"plot_{index}"] = path
    scores = evaluate_forecast(products["forecast"], config.data.store)
    products["scores"] = out_dir / products["forecast"].name.replace("forecast_", "scores_")
    with atomic_path(products["scores"]) as temporary:
        scores.to_netcdf(temporary)
    for name, path in products.items():
        print(f"{name}: {path}")
    if SCORED_LEAD in scores.lead_time.values:
        at_lead = scores.sel(lead_time=SCORED_LEAD)
        for channel in at_lead.channel.values:
            model, persistence = (float(at_lead[v].sel(channel=channel)) for v in ("rmse", "rmse_persistence"))
            ratio = model / persistence
            print(f"24 h RMSE {channel}: model {model:.4g}, persistence {persistence:.4g} (ratio {ratio:.2f})")
        mean_ratio = np.mean(at_lead.rmse.values / at_lead.rmse_persistence.values)
        print(f"24 h RMSE over persistence, mean over channels: {mean_ratio:.2f}")
    return products


def main() -> int:
    import argparse
    import sys

    from emulator.config import load_config

    parser = argparse.ArgumentParser(prog="python -m pipelines.demo", description=__doc__)
    parser.add_argument("--config", default="configs/world.yaml", help="YAML config (default: the built-in world)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args()
    try:
        run_demo(load_config(args.config), device=args.device)
    except EmulatorError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
