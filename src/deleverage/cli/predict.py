"""Commands ``deleverage predict train`` and ``deleverage predict evaluate``.

Thin layers over :mod:`deleverage.predict` (a typer group registered on the app of
:mod:`deleverage.cli.app`). ``train`` simulates a scenario over seeds, writes the dataset
(Parquet, docs/predict.md) and fits every model on the training seeds; ``evaluate`` scores the
saved models on the held-out seeds (or on a dataset built from another scenario, such as a
bundled crash window replayed), prints the scores and the verdict against the analytic
baseline and writes the model card. Bad input raises a
:class:`~deleverage.errors.DeleverageError` before any run starts (exit 2).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from deleverage._files import atomic_folder, atomic_write
from deleverage.errors import ValidationError

if TYPE_CHECKING:
    from deleverage.predict.dataset import Dataset
    from deleverage.predict.features import FeatureConfig
    from deleverage.sim.scenario import Scenario

__all__ = ["predict_app"]

predict_app = typer.Typer(
    name="predict",
    help="Predictive liquidation: datasets from simulations, models, evaluation.",
    no_args_is_help=True,
)

#: The training world: Merton jumps and a thin book, so liquidations cluster (docs/predict.md).
DEFAULT_SCENARIO = "predict-jumps"
_MODELS_DIR = "models"
_DATA_DIR = "dataset"
#: What `predict train` and `predict evaluate` write into their folder (a rerun replaces them).
OUTPUT_NAMES = (_MODELS_DIR, _DATA_DIR, "model_card.html", "scores.json")


def _console() -> Console:
    console = Console()
    return console if console.is_terminal else Console(width=130)


def _scenario(name: str, positions: int | None) -> Scenario:
    from importlib import resources

    from deleverage.sim.scenario import load_scenario

    if name == DEFAULT_SCENARIO:
        path = resources.files("deleverage") / "data" / "predict" / f"{DEFAULT_SCENARIO}.toml"
        scenario = load_scenario(str(path))
    else:
        scenario = load_scenario(name)
    if positions is not None:
        if positions < 1:
            raise ValidationError("--positions", positions, "must be >= 1")
        overrides = {
            f"markets.{m}.population.n_positions": positions
            for m, market in enumerate(scenario.markets)
            if market.population is not None
        }
        scenario = scenario.with_overrides(overrides)
    return scenario


def _seed_list(first: int, count: int, field: str) -> list[int]:
    if count < 1:
        raise ValidationError(field, count, "must be >= 1")
    return list(range(first, first + count))


@predict_app.command("train")
def train(
    scenario: Annotated[
        str, typer.Option(help="Scenario: a built-in name, a TOML file or predict-jumps.")
    ] = DEFAULT_SCENARIO,
    seeds: Annotated[int, typer.Option(help="Training seeds (runs), from --first-seed.")] = 8,
    test_seeds: Annotated[int, typer.Option(help="Held-out seeds after the training ones.")] = 4,
    first_seed: Annotated[int, typer.Option(help="First seed.")] = 1,
    horizon: Annotated[float, typer.Option(help="Label horizon H, seconds.")] = 300.0,
    window: Annotated[float, typer.Option(help="Feature window, seconds.")] = 300.0,
    sample_every: Annotated[float, typer.Option(help="Seconds between samples.")] = 60.0,
    cascade_level: Annotated[
        float, typer.Option(help="Market label: share of open interest liquidated within H.")
    ] = 0.01,
    positions: Annotated[
        int | None, typer.Option(help="Override every population's number of positions.")
    ] = None,
    random_seed: Annotated[int, typer.Option(help="Seed of the models' randomness.")] = 0,
    cut: Annotated[
        float | None,
        typer.Option(
            help="Split by time instead of by seed: train on t + H <= CUT seconds of every "
            "seed, score on t >= CUT (--test-seeds 0)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("results/predict"),
) -> None:
    """Simulate, write the dataset and fit baseline, logistic and gradient-boosted models.

    Example: deleverage predict train --seeds 8 --test-seeds 4 --out results/predict
    """
    from deleverage.predict.dataset import build_dataset, split_by_seed, split_by_time
    from deleverage.predict.features import FeatureConfig
    from deleverage.predict.models import MODEL_FEATURES, MODEL_KINDS, save_model, train_model

    console = _console()
    world = _scenario(scenario, positions)
    config = FeatureConfig(
        horizon_s=horizon, window_s=window, sample_every_s=sample_every,
        cascade_level=cascade_level,
    )  # fmt: skip
    train_ids = _seed_list(first_seed, seeds, "--seeds")
    if cut is not None:
        if not (math.isfinite(cut) and cut > 0):
            raise ValidationError("--cut", cut, "must be a finite number of seconds > 0")
        if test_seeds != 0:
            raise ValidationError("--test-seeds", test_seeds, "must be 0 with --cut (by time)")
        test_ids: list[int] = []
    else:
        test_ids = _seed_list(first_seed + seeds, test_seeds, "--test-seeds")
    started = time.perf_counter()
    with atomic_folder(out, field="--out", replaceable=OUTPUT_NAMES) as folder:
        with console.status("simulating") as status:

            def progress(seed: int) -> None:
                status.update(f"simulated seed {seed}")

            data = build_dataset(
                world, [*train_ids, *test_ids], config=config, progress=progress,
            )  # fmt: skip
        data.meta["test_seeds"] = test_ids
        data.meta["cut_s"] = cut
        data.write(folder / _DATA_DIR)
        (folder / _MODELS_DIR).mkdir()
        if cut is None:
            train_rows, _ = split_by_seed(data.accounts, test_ids)
        else:
            train_rows, test_rows = split_by_time(data.accounts, cut_s=cut, horizon_s=horizon)
            if train_rows.empty or test_rows.empty:
                raise ValidationError("--cut", cut, "must leave rows on both sides of the cut")
        table = Table(title=f"predict train: {world.name}, H = {horizon:g} s")
        for column in ("model", "rows", "positives", "fit s"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for kind in MODEL_KINDS:
            t0 = time.perf_counter()
            model = train_model(
                kind, train_rows, features=MODEL_FEATURES, label="liquidated",
                horizon_s=horizon, random_seed=random_seed, dataset_hash=data.content_hash,
            )  # fmt: skip
            save_model(model, folder / _MODELS_DIR / f"{kind}.joblib")
            table.add_row(
                kind, f"{len(train_rows):,}", f"{int(train_rows['liquidated'].sum()):,}",
                f"{time.perf_counter() - t0:.1f}",
            )  # fmt: skip
    console.print(table)
    console.print(
        f"dataset {data.content_hash[:16]}: {len(data.accounts):,} account rows, "
        f"{len(data.markets):,} market rows, seeds {train_ids[0]}-{train_ids[-1]} "
        + (
            f"train, {test_ids[0]}-{test_ids[-1]} held out; "
            if test_ids
            else f"split at {cut:g} s (train t + H <= cut, score t >= cut); "
        )
        + f"{time.perf_counter() - started:.0f} s; "
        f"written to {out}"
    )


@predict_app.command("evaluate")
def evaluate(
    models: Annotated[
        Path, typer.Option("--from", help="Folder written by `predict train`.")
    ] = Path("results/predict"),
    scenario: Annotated[
        str | None,
        typer.Option(help="Score on a new dataset from this scenario (default: held-out seeds)."),
    ] = None,
    seeds: Annotated[int, typer.Option(help="Seeds of the new dataset (with --scenario).")] = 2,
    first_seed: Annotated[int, typer.Option(help="First seed of the new dataset.")] = 1001,
    positions: Annotated[
        int | None, typer.Option(help="Override populations' sizes (with --scenario).")
    ] = None,
    level: Annotated[float, typer.Option(help="Probability level for the lead time.")] = 0.5,
    crash_windows: Annotated[
        bool,
        typer.Option(
            "--crash-windows",
            help="Score on every bundled BTCUSDT crash window replayed (btc-2025-10-10's book, "
            "one seed each from --first-seed; --positions applies).",
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score the saved models on held-out seeds: Brier, log loss, precision-recall, lead time.

    Writes scores.json and model_card.html next to the models.
    Example: deleverage predict evaluate --from results/predict
    """
    from deleverage.predict.card import build_model_card
    from deleverage.predict.dataset import (
        build_dataset,
        read_dataset,
        split_by_seed,
        split_by_time,
    )
    from deleverage.predict.evaluate import compare_to_baseline, score
    from deleverage.predict.features import ACCOUNT_FEATURES, FeatureConfig
    from deleverage.predict.models import EPS, MODEL_KINDS, check_compatible, load_model

    if not 0 < level < 1:
        raise ValidationError("--level", level, "must be a probability in (0, 1)")
    if scenario is not None and crash_windows:
        raise ValidationError("--crash-windows", True, "cannot be combined with --scenario")
    fitted = {kind: load_model(models / _MODELS_DIR / f"{kind}.joblib") for kind in MODEL_KINDS}
    data: Dataset = read_dataset(models / _DATA_DIR)
    meta = dict(data.meta)
    if scenario is None and not crash_windows and meta.get("cut_s") is not None:
        cut_s, h = float(meta["cut_s"]), float(meta["horizon_s"])
        _, rows = split_by_time(data.accounts, cut_s=cut_s, horizon_s=h)
        _, market_rows = split_by_time(data.markets, cut_s=cut_s, horizon_s=h)
        source = f"t >= {cut_s:g} s of seeds {meta.get('seeds')} of {meta.get('scenario')}"
    elif scenario is None and not crash_windows:
        _, rows = split_by_seed(data.accounts, meta.get("test_seeds", []))
        _, market_rows = split_by_seed(data.markets, meta.get("test_seeds", []))
        source = f"held-out seeds {meta.get('test_seeds')} of {meta.get('scenario')}"
    else:
        config = FeatureConfig(
            horizon_s=float(meta["horizon_s"]), window_s=float(meta["window_s"]),
            sample_every_s=float(meta["sample_every_s"]),
            cascade_level=float(meta["cascade_level"]),
        )  # fmt: skip
        if crash_windows:
            fresh, source = _crash_windows(config, first_seed, positions)
        else:
            assert scenario is not None
            fresh = build_dataset(
                _scenario(scenario, positions), _seed_list(first_seed, seeds, "--seeds"),
                config=config,
            )  # fmt: skip
            source = f"seeds {fresh.meta['seeds']} of {scenario}"
        rows, meta = fresh.accounts, {**fresh.meta, "content_hash": fresh.content_hash}
        market_rows = fresh.markets
    horizon = float(meta["horizon_s"])
    for model in fitted.values():
        check_compatible(model, label="liquidated", horizon_s=horizon)
    if rows.empty:
        raise ValidationError("--from", str(models), "holds no held-out rows to score")
    probabilities = {kind: model.predict_proba(rows) for kind, model in fitted.items()}
    scores = [
        score(kind, rows, p, label="liquidated", level=level, horizon_s=horizon)
        for kind, p in probabilities.items()
    ]
    comparisons = [
        compare_to_baseline(
            rows,
            probabilities[kind],
            probabilities["baseline"],
            label="liquidated",
            model=kind,
            where=source,
        )
        for kind in MODEL_KINDS
        if kind != "baseline"
    ]
    card = build_model_card(
        title=f"deleverage model card: liquidation within {horizon:g} s",
        scores=scores, comparisons=comparisons,
        data={**meta, "scored_on": source, "trained_on_seeds": fitted["gbt"].meta.training_seeds},
        features={k: v for k, v in ACCOUNT_FEATURES.items() if k in fitted["gbt"].meta.features},
        level=level,
    )  # fmt: skip
    atomic_write(models / "model_card.html", lambda p: p.write_text(card), field="--from")
    cascade = (
        score(
            "cascade_first_passage", market_rows,
            market_rows["cascade_first_passage"].to_numpy().clip(EPS, 1 - EPS), label="cascade",
        )
        if len(market_rows)
        else None
    )  # fmt: skip
    report: dict[str, Any] = {
        "scored_on": source,
        "market_cascade_baseline": cascade.row() if cascade is not None else None,
        "scores": [s.row() for s in scores],
        "verdicts": [c.verdict for c in comparisons],
        "gbt_beats_baseline": next(c.beats_baseline for c in comparisons if c.model == "gbt"),
    }
    text = json.dumps(_finite(report), indent=2, allow_nan=False)
    atomic_write(models / "scores.json", lambda p: p.write_text(text), field="--from")
    console = _console()
    if json_out:
        typer.echo(text)
        return
    table = Table(title=f"predict evaluate: {source}")
    for column in ("model", "rows", "positives", "Brier", "log loss", "avg precision",
                   "warned", "median lead s"):  # fmt: skip
        table.add_column(column, justify="left" if column == "model" else "right")
    for s in scores:
        table.add_row(
            s.model, f"{s.rows:,}", f"{s.positives:,}", f"{s.brier:.5f}", f"{s.log_loss:.5f}",
            f"{s.average_precision:.4f}", f"{s.warned_share:.1%}", f"{s.median_lead_s:.0f}",
        )  # fmt: skip
    console.print(table)
    for c in comparisons:
        console.print(c.verdict, highlight=False)
    if cascade is not None:
        console.print(
            f"market cascades (>= {meta.get('cascade_level')} of open interest within H): "
            f"{cascade.positives} of {cascade.rows} samples; analytic cascade baseline Brier "
            f"{cascade.brier:.4f}, average precision {cascade.average_precision:.3f}",
            highlight=False,
        )
    console.print(f"model card: {models / 'model_card.html'}")


def _crash_windows(
    config: FeatureConfig, first_seed: int, positions: int | None
) -> tuple[Dataset, str]:
    """One dataset over every bundled BTCUSDT crash window replayed through btc-2025-10-10's
    book and population, each window its own seed (so the per-seed interval is over windows).
    Windows of other markets (the ETH hourly bars of Black Thursday) are left out: the
    population and book are BTC's."""
    import pandas as pd

    from deleverage.predict.dataset import Dataset, build_dataset
    from deleverage.prices.historical import list_bundled

    template = _scenario("btc-2025-10-10", positions)
    windows = [name for name in list_bundled() if name.startswith("btcusdt-")]
    parts = []
    for k, name in enumerate(windows):
        world = template.with_overrides({"name": f"replay-{name}", "markets.0.price.bundled": name})
        parts.append(build_dataset(world, [first_seed + k], config=config))
    data = Dataset(
        accounts=pd.concat([d.accounts for d in parts], ignore_index=True),
        markets=pd.concat([d.markets for d in parts], ignore_index=True),
        meta={**parts[0].meta, "scenario": "bundled crash windows",
              "seeds": [s for d in parts for s in d.meta["seeds"]]},
    )  # fmt: skip
    names = ", ".join(f"{name} (seed {first_seed + k})" for k, name in enumerate(windows))
    return data, f"bundled crash windows replayed: {names}"


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


_POLICIES: dict[str, dict[str, dict[str, Any]]] = {
    "margin": {"margin": {}},
    "deleveraging": {"deleveraging": {}},
    "both": {"margin": {}, "deleveraging": {}},
    "alerts-margin": {"alerts": {"action": "add_margin"}},
    "alerts-reduce": {"alerts": {"action": "reduce", "fraction": 0.5}},
}


@predict_app.command("policy")
def policy(
    scenario: Annotated[
        str, typer.Option(help="Scenario (its [proactive] block is used when it has one).")
    ] = DEFAULT_SCENARIO,
    kind: Annotated[
        str,
        typer.Option(
            "--policy",
            help="margin, deleveraging, both, alerts-margin or alerts-reduce (traders react "
            "to alerts on their predicted probability); default parameters.",
        ),
    ] = "both",
    seeds: Annotated[int, typer.Option(help="Seeds, each run with and without.")] = 6,
    first_seed: Annotated[int, typer.Option(help="First seed.")] = 1,
    model: Annotated[
        Path | None, typer.Option(help="Account model file (default: the analytic baseline).")
    ] = None,
    positions: Annotated[
        int | None, typer.Option(help="Override every population's number of positions.")
    ] = None,
    sudden_share: Annotated[
        float, typer.Option(help="A step liquidating this share of open interest is sudden.")
    ] = 0.005,
    out: Annotated[
        Path | None, typer.Option(help="Folder for policy_runs.csv and policy.json.")
    ] = None,
) -> None:
    """Run a scenario with and without proactive margin / predictive deleveraging on the
    same seeds; print each metric's change with a 95% t interval and whether the policy helps.

    Example: deleverage predict policy --policy deleveraging --seeds 6
    """
    from deleverage.predict.models import load_model
    from deleverage.predict.proactive import evaluate_policy, policy_verdict

    world = _scenario(scenario, positions)
    if world.proactive is None:
        if kind not in _POLICIES:
            raise ValidationError("--policy", kind, f"must be one of {', '.join(_POLICIES)}")
        world = world.with_overrides({"proactive": _POLICIES[kind]})
    fitted = load_model(model) if model is not None else None
    console = _console()
    with console.status("running with and without the policy") as status:
        frame, effects = evaluate_policy(
            world, _seed_list(first_seed, seeds, "--seeds"), model=fitted,
            sudden_share=sudden_share, progress=lambda s: status.update(f"seed {s} done"),
        )  # fmt: skip
    verdict = policy_verdict(effects)
    if out is not None:
        with atomic_folder(out, field="--out", replaceable=("policy_runs.csv", "policy.json")) as f:
            frame.to_csv(f / "policy_runs.csv", index=False)
            report = {
                "scenario": world.name,
                "proactive": world.proactive.model_dump(mode="json") if world.proactive else None,
                "effects": [vars_of(e) for e in effects],
                "verdict": verdict,
            }
            (f / "policy.json").write_text(json.dumps(_finite(report), indent=2, allow_nan=False))
    table = Table(title=f"predict policy: {world.name}, {seeds} seeds, on - off (95% t interval)")
    for column in ("metric", "mean off", "mean on", "difference", "interval", "verdict"):
        table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
    for e in effects:
        table.add_row(
            e.metric, f"{e.mean_off:,.1f}", f"{e.mean_on:,.1f}", f"{e.mean_difference:+,.1f}",
            f"[{e.low:+,.1f}, {e.high:+,.1f}]", e.verdict,
        )  # fmt: skip
    console.print(table)
    console.print(verdict, highlight=False)


def vars_of(effect: Any) -> dict[str, Any]:
    """A frozen slotted dataclass as a dict."""
    return {name: getattr(effect, name) for name in effect.__slots__}
