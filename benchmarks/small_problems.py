"""Small problems: scikit-learn's RBM example, and the command line on small data sets.

Each beside its reference measured in the same run.

    python benchmarks/small_problems.py [--part {rbm,cli,all}] [--seeds 0 1 2 3 4]
                                        [--datasets iris wine breast_cancer digits diabetes
                                                    two_columns make_classification]
                                        [--train-options "--visible bernoulli"]

Part "rbm": scikit-learn's ``plot_rbm_logistic_classification.py`` example. The 8x8 digits
scaled to [0, 1] and nudged one pixel in four directions (5 x 1797 rows), split 80/20
(``random_state=0``); a Pipeline of an RBM (100 hidden units, learning rate 0.06, 10 epochs,
batches of 10) and ``LogisticRegression(C=6000, max_iter=1000)``. The RBMs, called as a user
would: scikit-learn's ``BernoulliRBM(n_components=100, learning_rate=0.06, n_iter=10,
random_state=seed)``; ``deepbelief.RBM(n_components=100, learning_rate=0.06, n_iter=10,
random_state=seed)`` with deepbelief's defaults otherwise (CD-1 with momentum); and,
when deepbelief has it, the same with ``**BERNOULLI_RBM_COMPAT`` (scikit-learn's
algorithm: PCD-1, no momentum, no weight decay). Printed per RBM: the median over the seeds
of the RBM's fit seconds, of the whole pipeline's fit seconds and of its test accuracy, and
for deepbelief the share of its fit spent in the per-epoch monitors. Targets: deepbelief's
fit time at most scikit-learn's; its accuracy at least scikit-learn's minus 0.5 points.

Part "cli": ``deepbelief train train.csv -o model --seed SEED --quiet`` (the installed
command, with its defaults) on iris, wine, breast_cancer and digits (classification) and
diabetes (regression) from ``sklearn.datasets``, and two synthetic tables of independent
columns (``two_columns``: 1,000 rows of two standard normals, the class x1 + x2 > 0;
``make_classification``: scikit-learn's, 1,000 rows of 10 columns), a 25 % held-out split per seed
(``train_test_split(test_size=0.25, random_state=seed)``, stratified for classification),
written as CSV files (the features, then a ``target`` column); the model is scored on the
held-out file by ``deepbelief evaluate model test.csv --json``, beside a
``LogisticRegression(max_iter=5000)`` after a ``StandardScaler`` (classification) or a
``Ridge`` (regression) on the same split. Printed per data set: median accuracy (R^2) of
both, the target (LogisticRegression's minus 1 point, Ridge's minus 0.02) and whether it is
met, and the median wall seconds of the train command (a fresh process: imports included);
then the means over the seeds (on a 38-row test set such as iris's, one row is 2.6 points, so
more seeds, ``--seeds 0 1 ... 19``, tell more than five). ``--train-options`` adds options to
every train command (to compare a choice with the defaults).

Each RBM fit is timed in a fresh worker process (this script with --worker), so that every
measurement includes what a user's first fit in a process pays, and no library's idle
threads (OpenBLAS spins after scikit-learn's calls) slow the next; the methods are
interleaved seed by seed so that drifts in machine load hit them all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import deepbelief

try:  # added by another change; the compat row is skipped without it
    from deepbelief.estimators import BERNOULLI_RBM_COMPAT
except ImportError:
    BERNOULLI_RBM_COMPAT = None

RBM_METHODS = ["sklearn", "deepbelief"] + (["deepbelief-compat"] if BERNOULLI_RBM_COMPAT else [])
DATASETS = {  # name: (loader, task)
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
    "diabetes": ("load_diabetes", "regression"),
    "two_columns": ("two_columns", "classification"),
    "make_classification": ("make_classification", "classification"),
}
ACCURACY_MARGIN = 0.5  # points below scikit-learn's pipeline (part rbm)
LR_MARGIN, RIDGE_MARGIN = 1.0, 0.02  # below the baselines (part cli)


# ---------------------------------------------------------------------- part rbm
def nudged_digits():
    """The data of scikit-learn's example: (X_train, X_test, y_train, y_test)."""
    from scipy.ndimage import convolve
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import minmax_scale

    X, y = datasets.load_digits(return_X_y=True)
    X = np.asarray(X, "float32")
    directions = [
        [[0, 1, 0], [0, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [1, 0, 0], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 1], [0, 0, 0]],
        [[0, 0, 0], [0, 0, 0], [0, 1, 0]],
    ]

    def shift(x, w):
        return convolve(x.reshape((8, 8)), mode="constant", weights=w).ravel()

    X = np.concatenate([X] + [np.apply_along_axis(shift, 1, X, w) for w in directions])
    y = np.concatenate([y for _ in range(5)], axis=0)
    X = minmax_scale(X, feature_range=(0, 1))  # float64, as in the example
    return train_test_split(X, y, test_size=0.2, random_state=0)


def make_rbm(method: str, seed: int):
    settings = dict(n_components=100, learning_rate=0.06, n_iter=10, random_state=seed)
    if method == "sklearn":
        from sklearn.neural_network import BernoulliRBM

        return BernoulliRBM(**settings)
    if method == "deepbelief-compat":
        return deepbelief.RBM(**{**BERNOULLI_RBM_COMPAT, **settings})
    return deepbelief.RBM(**settings)


def rbm_worker(method: str, seed: int) -> dict:
    """One fit of the example's pipeline: the RBM's fit timed alone, then the logistic
    regression on its features, as ``Pipeline.fit`` does; the pipeline's test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    X_train, X_test, y_train, y_test = nudged_digits()
    rbm = make_rbm(method, seed)
    logistic = LogisticRegression(C=6000, max_iter=1000)
    start = time.perf_counter()
    rbm.fit(X_train)
    fit_seconds = time.perf_counter() - start
    logistic.fit(rbm.transform(X_train), y_train)
    pipeline_seconds = time.perf_counter() - start
    pipeline = Pipeline([("rbm", rbm), ("logistic", logistic)])
    out = {
        "fit_seconds": fit_seconds,
        "pipeline_seconds": pipeline_seconds,
        "accuracy": 100 * pipeline.score(X_test, y_test),
    }
    if method != "sklearn":
        out.update(monitor_share(rbm, X_train, fit_seconds))
    return out


def monitor_share(rbm, X_train, fit_seconds: float) -> dict:
    """The fit's seconds in the per-epoch monitors: one call on the monitored rows (the median
    of five, on the fit's threads) times the monitored epochs."""
    from deepbelief.training import spread_rows

    trainer = rbm.trainer_
    X = torch.as_tensor(X_train, dtype=rbm.model_.weight.dtype)
    rows = spread_rows(X, trainer.settings["monitor_rows"])
    monitored = sum("reconstruction_error" in h for h in trainer.history)
    if not len(rows) or not monitored:
        return {"monitor_share": 0.0, "monitored_epochs": monitored}
    times = []
    with trainer.thread_scope(len(X)):
        for _ in range(5):
            start = time.perf_counter()
            trainer.monitors(rows)
            times.append(time.perf_counter() - start)
    share = statistics.median(times) * monitored / fit_seconds
    return {"monitor_share": share, "monitored_epochs": monitored}


def measure(arguments: list[str]) -> dict:
    command = [sys.executable, __file__, "--worker", *arguments]
    out = subprocess.run(command, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"worker {arguments} failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def rbm_part(args) -> None:
    print(
        "Part rbm: scikit-learn's RBM + LogisticRegression example (nudged digits, "
        "7188 x 64 training rows; 100 hidden units, lr 0.06, 10 epochs, batch 10; C=6000)"
    )
    print(f"seeds {args.seeds} (the RBM's random_state); medians; each fit in a fresh process")
    results = {m: [] for m in RBM_METHODS}
    for seed in args.seeds:
        for method in RBM_METHODS:
            results[method].append(measure(["rbm", method, str(seed)]))
    print(
        f"{'RBM':<18} {'fit s':>7} {'pipeline s':>11} {'accuracy %':>11} {'fit/sklearn':>12} "
        f"{'monitors':>9}"
    )
    med = {
        m: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        for m, rows in results.items()
    }
    reference = med["sklearn"]
    for method in RBM_METHODS:
        row = med[method]
        share = f"{100 * row['monitor_share']:8.1f}%" if "monitor_share" in row else f"{'':>9}"
        print(
            f"{method:<18} {row['fit_seconds']:>7.3f} {row['pipeline_seconds']:>11.3f} "
            f"{row['accuracy']:>11.2f} {row['fit_seconds'] / reference['fit_seconds']:>12.2f} "
            f"{share}"
        )
    for method in RBM_METHODS[1:]:
        row = med[method]
        fast = row["fit_seconds"] <= reference["fit_seconds"]
        accurate = row["accuracy"] >= reference["accuracy"] - ACCURACY_MARGIN
        print(
            f"{method}: fit time at most scikit-learn's: {'met' if fast else 'not met'} "
            f"({row['fit_seconds']:.3f} s against {reference['fit_seconds']:.3f} s); accuracy "
            f"at least {reference['accuracy'] - ACCURACY_MARGIN:.2f} %: "
            f"{'met' if accurate else 'not met'} ({row['accuracy']:.2f} %)"
        )
    per_seed = {m: [round(r["fit_seconds"], 3) for r in rows] for m, rows in results.items()}
    print(f"fit seconds per seed: {per_seed}")
    accuracies = {m: [round(r["accuracy"], 2) for r in rows] for m, rows in results.items()}
    print(f"accuracy per seed: {accuracies}", flush=True)


# ---------------------------------------------------------------------- part cli
def deepbelief_command() -> Path:
    return Path(sys.executable).parent / "deepbelief"


def two_columns():
    """1,000 rows of two independent standard normal columns; the class: x1 + x2 > 0."""
    import pandas as pd

    X = np.random.default_rng(0).normal(size=(1000, 2))
    y = pd.Series((X.sum(axis=1) > 0).astype(int), name="target")
    return pd.DataFrame(X, columns=["x1", "x2"]), y


def make_classification():
    """scikit-learn's ``make_classification(1000, 10, n_informative=5, random_state=0)``."""
    import pandas as pd
    from sklearn import datasets

    X, y = datasets.make_classification(1000, 10, n_informative=5, random_state=0)
    columns = [f"x{i + 1}" for i in range(X.shape[1])]
    return pd.DataFrame(X, columns=columns), pd.Series(y, name="target")


SYNTHETIC = {"two_columns": two_columns, "make_classification": make_classification}


def split_files(name: str, seed: int, folder: Path):
    """Write train.csv and test.csv of data set ``name`` for ``seed``; returns the arrays."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split

    loader, task = DATASETS[name]
    if loader in SYNTHETIC:
        X, y = SYNTHETIC[loader]()
    else:
        X, y = getattr(datasets, loader)(return_X_y=True, as_frame=True)
    stratify = y if task == "classification" else None
    parts = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=stratify)
    X_train, X_test, y_train, y_test = parts
    X_train.assign(target=y_train).to_csv(folder / "train.csv", index=False)
    X_test.assign(target=y_test).to_csv(folder / "test.csv", index=False)
    return X_train.to_numpy(), X_test.to_numpy(), y_train.to_numpy(), y_test.to_numpy()


def baseline_score(task: str, X_train, X_test, y_train, y_test) -> float:
    """LogisticRegression's accuracy in % after a StandardScaler, or Ridge's R^2."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classification":
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
        return 100 * model.fit(X_train, y_train).score(X_test, y_test)
    return Ridge().fit(X_train, y_train).score(X_test, y_test)


def cli_run(name: str, seed: int, options: list[str]) -> dict:
    """Train with the command's defaults, score on the held-out file, and the baseline."""
    task = DATASETS[name][1]
    command = str(deepbelief_command())
    with tempfile.TemporaryDirectory(prefix="small-problems-") as tmp:
        folder = Path(tmp)
        arrays = split_files(name, seed, folder)
        train = [command, "train", "train.csv", "-o", "model", "--seed", str(seed), "--quiet"]
        train += options
        start = time.perf_counter()
        done = subprocess.run(train, cwd=folder, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise SystemExit(f"{' '.join(train)} failed on {name}: {done.stderr.strip()}")
        evaluate = [command, "evaluate", "model", "test.csv", "--json", "--quiet"]
        scored = subprocess.run(evaluate, cwd=folder, capture_output=True, text=True)
        if scored.returncode:
            raise SystemExit(f"{' '.join(evaluate)} failed on {name}: {scored.stderr.strip()}")
        metrics = json.loads(scored.stdout)
    ours = 100 * metrics["accuracy"] if task == "classification" else metrics["r2"]
    rows = len(arrays[0]) + len(arrays[1])
    return {
        "ours": ours,
        "baseline": baseline_score(task, *arrays),
        "seconds": seconds,
        "rows": rows,
    }


def cli_part(args) -> None:
    command = deepbelief_command()
    if not command.exists():
        raise SystemExit(f"the deepbelief command is not installed next to Python ({command})")
    print(
        "Part cli: `deepbelief train train.csv -o model --seed SEED --quiet` (defaults), scored "
        "by `deepbelief evaluate model test.csv --json` on a 25 % held-out split"
    )
    print(f"seeds {args.seeds}; medians; baselines on the same split")
    if args.train_options:
        print(f"train options added: {args.train_options}")
    print(
        f"{'data set':<14} {'rows':>5} {'metric':>9} {'deepbelief':>11} {'baseline':>9} "
        f"{'target':>8} {'met':>8} {'train s':>8}"
    )
    for name in args.datasets:
        task = DATASETS[name][1]
        runs = [cli_run(name, seed, shlex.split(args.train_options)) for seed in args.seeds]
        ours = statistics.median(r["ours"] for r in runs)
        base = statistics.median(r["baseline"] for r in runs)
        seconds = statistics.median(r["seconds"] for r in runs)
        if task == "classification":
            metric, target, fmt = "accuracy%", base - LR_MARGIN, "{:.2f}"
        else:
            metric, target, fmt = "R^2", base - RIDGE_MARGIN, "{:.3f}"
        rows = runs[0]["rows"]
        met = "met" if ours >= target else "not met"
        print(
            f"{name:<14} {rows:>5} {metric:>9} {fmt.format(ours):>11} {fmt.format(base):>9} "
            f"{fmt.format(target):>8} {met:>8} {seconds:>8.1f}",
            flush=True,
        )
        print(
            f"  per seed: deepbelief {[round(r['ours'], 3) for r in runs]}, baseline "
            f"{[round(r['baseline'], 3) for r in runs]}, seconds "
            f"{[round(r['seconds'], 1) for r in runs]}",
            flush=True,
        )
        means = [statistics.fmean(r[key] for r in runs) for key in ("ours", "baseline")]
        print(f"  means: deepbelief {fmt.format(means[0])}, baseline {fmt.format(means[1])}")


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["rbm", "cli", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument(
        "--train-options", default="", help="part cli: options added to the train command"
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("PART", "METHOD", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        _, method, seed = args.worker
        print(json.dumps(rbm_worker(method, int(seed))))
        return
    print(
        f"nproc={os.cpu_count()} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"machine={platform.machine()} deepbelief={deepbelief.__version__}"
    )
    if args.part in ("rbm", "all"):
        rbm_part(args)
    if args.part in ("cli", "all"):
        cli_part(args)


if __name__ == "__main__":
    main()
