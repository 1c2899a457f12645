"""Seconds per epoch of CD-1 on full MNIST, 784-500 binary RBM, float32, CPU.

Compares, in one process: deepbelief's RBM trainer (no monitors), the scikit-learn estimator
``deepbelief.RBM(...).fit`` as a user calls it (NumPy input, its default per-epoch monitors),
scikit-learn's BernoulliRBM of the same size and batch, and the machine's ceiling: the five
matrix products one CD-1 update needs (v0 W, h0 W^T, v1 W, v0^T p0, v1^T p1) timed alone at
the same batch size.

    python benchmarks/throughput.py [--mnist ../shared/datasets/mnist] [--batch-sizes 10 100 1000]

Targets at batch 100: deepbelief within 1.25x of the ceiling, at least 1.6x faster than
scikit-learn; the estimator within 1.1x of the trainer.

Each epoch is timed in a fresh worker process (this script with --worker), one after the
other, so that no library's idle threads (OpenBLAS spins after scikit-learn's calls) slow the
next measurement; the methods are interleaved so drifts in machine load hit them all.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neural_network import BernoulliRBM

import deepbelief
from deepbelief.data import load_mnist
from deepbelief.nn import RBM
from deepbelief.samplers import CD
from deepbelief.training import RBMTrainer, make_generator

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
N_HIDDEN = 500


def time_deepbelief(X: torch.Tensor, batch: int, reconstruction: str = "mean") -> float:
    generator = make_generator(0, torch.device("cpu"))
    model = RBM(X.shape[1], N_HIDDEN, generator=generator)
    sampler = CD(1, reconstruction=reconstruction)
    trainer = RBMTrainer(
        model, sampler, epochs=1, batch_size=batch, monitor_rows=0, generator=generator
    )
    start = time.perf_counter()
    trainer.fit(X)
    return time.perf_counter() - start


def time_estimator(X: np.ndarray, batch: int) -> float:
    """The scikit-learn estimator with its defaults (CD-1, the same rate and momentum as the
    trainer, per-epoch monitors on 1000 rows), on the NumPy array."""
    rbm = deepbelief.RBM(N_HIDDEN, batch_size=batch, n_iter=1, random_state=0, device="cpu")
    start = time.perf_counter()
    rbm.fit(X)
    return time.perf_counter() - start


def time_sklearn(X: np.ndarray, batch: int) -> float:
    rbm = BernoulliRBM(N_HIDDEN, batch_size=batch, n_iter=1, random_state=0)
    start = time.perf_counter()
    rbm.fit(X)
    return time.perf_counter() - start


def time_ceiling(X: torch.Tensor, batch: int) -> float:
    """The matrix products of one CD-1 epoch, nothing else."""
    W = torch.randn(X.shape[1], N_HIDDEN) * 0.01
    start = time.perf_counter()
    for v0 in torch.split(X, batch):
        p0 = v0 @ W
        v1 = p0 @ W.t()
        p1 = v1 @ W
        v0.t() @ p0
        v1.t() @ p1
    return time.perf_counter() - start


def time_deepbelief_sampled(X: torch.Tensor, batch: int) -> float:
    return time_deepbelief(X, batch, reconstruction="sample")


TIMERS = {
    "ceiling": time_ceiling,
    "deepbelief": time_deepbelief,
    "sklearn": time_sklearn,
    "deepbelief-sampled": time_deepbelief_sampled,
    "estimator": time_estimator,
}
NUMPY_INPUT = ("sklearn", "estimator")


def worker(method: str, batch: int, mnist: Path) -> None:
    images, _ = load_mnist(mnist, "train")
    X = images.astype(np.float32)
    print(TIMERS[method](X if method in NUMPY_INPUT else torch.from_numpy(X), batch))


def measure(method: str, batch: int, mnist: Path) -> float:
    command = [sys.executable, __file__, "--worker", method, "--batch", str(batch)]
    out = subprocess.run(command + ["--mnist", str(mnist)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{method} worker failed: {out.stderr.strip().splitlines()[-1]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per method (median)")
    parser.add_argument("--worker", choices=sorted(TIMERS), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.batch, args.mnist)

    print(f"MNIST train (60000, 784), 784-{N_HIDDEN} binary RBM, CD-1, float32, CPU")
    print(
        f"nproc={os.cpu_count()} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"machine={platform.machine()} repeats={args.repeats} (medians)"
    )
    print(
        "deepbelief: CD-1 as in Hinton's guide (sampled h0, mean reconstruction v1); "
        "deepbelief-sampled: v1 sampled too (the textbook Gibbs step, as scikit-learn does)"
    )
    print(
        "estimator: deepbelief.RBM(500, batch_size=batch, n_iter=1).fit(X) on the NumPy array, "
        "with its per-epoch monitors (1000 rows)"
    )
    print(
        f"{'batch':>6} {'ceiling s':>10} {'deepbelief s':>13} {'sklearn s':>10} "
        f"{'sampled s':>10} {'estimator s':>12} {'db/ceiling':>11} {'sklearn/db':>11} "
        f"{'sampled/ceil':>13} {'sklearn/sampled':>16} {'est/ceiling':>12} {'est/db':>7}"
    )
    for batch in args.batch_sizes:
        times = {m: [] for m in TIMERS}
        for _ in range(args.repeats):
            for method in TIMERS:
                times[method].append(measure(method, batch, args.mnist))
        c, d, s, d2, e = (statistics.median(times[m]) for m in TIMERS)
        print(
            f"{batch:>6} {c:>10.2f} {d:>13.2f} {s:>10.2f} {d2:>10.2f} {e:>12.2f} {d / c:>11.2f} "
            f"{s / d:>11.2f} {d2 / c:>13.2f} {s / d2:>16.2f} {e / c:>12.2f} {e / d:>7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
