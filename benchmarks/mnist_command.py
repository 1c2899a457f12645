"""MNIST test error through the product: ``deepbelief train`` on the IDX files as a user would
type it (with its defaults, a ``--preset`` or a ``--time-budget``), then ``deepbelief
evaluate`` on the test files; or the same through ``DBNClassifier`` (``--via estimator``).

    python benchmarks/mnist_command.py                                  # the defaults, seed 0
    python benchmarks/mnist_command.py --seeds 0 1 2 -- --preset srivastava2014
    python benchmarks/mnist_command.py --via estimator --seeds 0 -- --preset srivastava2014

Everything after ``--`` is passed to ``deepbelief train`` (with ``--via estimator``: only
``--preset NAME`` and ``--time-budget S`` are understood). The test set is only scored.

Targets (issue 14): with no options, better than the 1.70 % the old defaults gave in 218 s,
in about 4 minutes; with ``--preset srivastava2014`` (or ``--time-budget 1800``), <= 1.00 %
within 30 minutes on 2 cores, median of 3 seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
TRAIN = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
REFERENCE = {
    "defaults": "old defaults: 1.70 % in 218 s; target: better, in about 240 s",
    "budgeted": "target <= 1.00 % within 1800 s (median of 3 seeds)",
}


def deepbelief() -> list[str]:
    """The command beside this interpreter, else the package run by it (``-m deepbelief``:
    a checkout on ``PYTHONPATH``, as on a GPU machine)."""
    beside = Path(sys.executable).with_name("deepbelief")
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "deepbelief"]


def via_command(mnist: Path, seed: int, options: list[str], folder: Path) -> dict:
    model = folder / f"seed{seed}"
    train = [*deepbelief(), "train", str(mnist / TRAIN[0]), "--labels", str(mnist / TRAIN[1])]
    train += ["-o", str(model), "--seed", str(seed), "--json", *options]
    start = time.perf_counter()
    done = subprocess.run(train, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"train failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    card = json.loads(done.stdout)
    score = [*deepbelief(), "evaluate", str(model), str(mnist / TEST[0]), "--labels"]
    score += [str(mnist / TEST[1]), "--json"]
    scored = subprocess.run(score, capture_output=True, text=True, check=True)
    accuracy = json.loads(scored.stdout)["accuracy"]
    return dict(seconds=card["train_seconds"], wall=wall, error=100 * (1 - accuracy),
                settings=card.get("settings"))  # fmt: skip


def via_estimator(mnist: Path, seed: int, options: list[str], folder: Path) -> dict:
    from deepbelief import DBNClassifier
    from deepbelief.data import load_mnist

    parser = argparse.ArgumentParser()
    parser.add_argument("--preset")
    parser.add_argument("--time-budget", type=float)
    known = parser.parse_args(options)
    X, y = load_mnist(mnist, "train")
    X_test, y_test = load_mnist(mnist, "test")
    clf = DBNClassifier(preset=known.preset, time_budget=known.time_budget, random_state=seed)
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    error = 100 * (1 - clf.score(X_test, y_test))
    return dict(seconds=seconds, wall=seconds, error=error, settings=clf.settings_)


def main() -> None:
    argv = sys.argv[1:]
    options = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--via", choices=("command", "estimator"), default="command")
    p.add_argument("-o", "--output", type=Path, help="keep the models here (default: a temp dir)")
    args = p.parse_args(argv)
    if not all((args.mnist / name).exists() for name in TRAIN + TEST):
        raise SystemExit(f"{args.mnist}: the four MNIST IDX files are not there")
    import torch

    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.processor() or platform.machine()}; nproc {os.cpu_count()}; "
          f"torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    if torch.cuda.is_available():
        print(f"# GPU: {torch.cuda.get_device_name()} (device 'auto' trains there)")
    run = via_command if args.via == "command" else via_estimator
    budgeted = any(o in ("--preset", "--time-budget") for o in options)
    reference = REFERENCE["budgeted" if budgeted else "defaults"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.output or Path(scratch)
        for seed in args.seeds:
            result = run(args.mnist, seed, options, folder)
            rows.append(result)
            print(f"seed {seed}: train {result['seconds']:7.1f} s (wall {result['wall']:7.1f} s)"
                  f"  test error {result['error']:.2f} %", flush=True)  # fmt: skip
    print(f"settings: {rows[0]['settings']}")
    errors = [r["error"] for r in rows]
    seconds = [r["seconds"] for r in rows]
    print(f"{'via':10} {'options':34} {'median s':>9} {'median error %':>15}   reference")
    print(f"{args.via:10} {' '.join(options) or '(none)':34} {statistics.median(seconds):9.1f} "
          f"{statistics.median(errors):15.2f}   {reference}")  # fmt: skip


if __name__ == "__main__":
    main()
