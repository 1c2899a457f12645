"""Seconds per epoch of CD-1 on full MNIST, 784-500 binary RBM, float32, CPU.

Compares, in one process: deepbelief's RBM trainer, scikit-learn's BernoulliRBM of the same
size and batch, and the machine's ceiling: the five matrix products one CD-1 update needs
(v0 W, h0 W^T, v1 W, v0^T p0, v1^T p1) timed alone at the same batch size.

    python benchmarks/throughput.py [--mnist ../shared/datasets/mnist] [--batch-sizes 10 100 1000]

Targets at batch 100: deepbelief within 1.25x of the ceiling, at least 1.6x faster than
scikit-learn.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.neural_network import BernoulliRBM

from deepbelief.data import load_mnist
from deepbelief.nn import RBM
from deepbelief.training import RBMTrainer, make_generator

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
N_HIDDEN = 500


def time_deepbelief(X: torch.Tensor, batch: int) -> float:
    generator = make_generator(0, torch.device("cpu"))
    model = RBM(X.shape[1], N_HIDDEN, generator=generator)
    trainer = RBMTrainer(
        model, "cd", epochs=1, batch_size=batch, monitor_rows=0, generator=generator
    )
    start = time.perf_counter()
    trainer.fit(X)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per method (median)")
    args = parser.parse_args()

    images, _ = load_mnist(args.mnist, "train")
    X_np = images.astype(np.float32)
    X = torch.from_numpy(X_np)
    print(f"MNIST train {X.shape}, 784-{N_HIDDEN} binary RBM, CD-1, float32, CPU")
    print(
        f"nproc={os.cpu_count()} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"machine={platform.machine()}"
    )
    print(f"{'batch':>6} {'ceiling s':>10} {'deepbelief s':>13} {'sklearn s':>10} "
          f"{'db/ceiling':>11} {'sklearn/db':>11}")
    for batch in args.batch_sizes:
        ceiling, ours, theirs = [], [], []
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all three
            ceiling.append(time_ceiling(X, batch))
            ours.append(time_deepbelief(X, batch))
            theirs.append(time_sklearn(X_np, batch))
        c, d, s = (statistics.median(t) for t in (ceiling, ours, theirs))
        print(f"{batch:>6} {c:>10.2f} {d:>13.2f} {s:>10.2f} {d / c:>11.2f} {s / d:>11.2f}",
              flush=True)


if __name__ == "__main__":
    main()
