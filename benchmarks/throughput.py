"""Seconds per epoch of CD-1 on full MNIST, 784-500 binary RBM, float32, CPU.

Compares, in one process: deepbelief's RBM trainer (no monitors), the scikit-learn estimator
``deepbelief.RBM(...).fit`` as a user calls it (NumPy input, its default per-epoch monitors),
scikit-learn's BernoulliRBM of the same size and batch, and the machine's ceiling: the five
matrix products one CD-1 update needs (v0 W, h0 W^T, v1 W, v0^T p0, v1^T p1) timed alone at
the same batch size (and, where the trainer runs one thread, on one thread too).

    python benchmarks/throughput.py [--mnist ../shared/datasets/mnist] [--batch-sizes 10 100 1000]
    python benchmarks/throughput.py --device cuda     # batch 100 to 10,000 on a GPU

Target (issue 16): the trainer and the estimator within 1.1x of the ceiling at batch 10, 100
and 1000 on the CPU; on a GPU the same table (without scikit-learn, which has no GPU path)
with samples per second, after one epoch of warm-up, over ``--gpu-epochs`` epochs.

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
from deepbelief.loop import ONE_THREAD_MACS
from deepbelief.nn import RBM
from deepbelief.samplers import CD
from deepbelief.training import RBMTrainer, make_generator

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
N_HIDDEN = 500


#: epochs timed per worker on a GPU (after one of warm-up); one on the CPU
EPOCHS = {"cpu": 1}


def clock(device: torch.device) -> float:
    """``time.perf_counter`` once the device's queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def epochs_on(device: torch.device) -> int:
    return EPOCHS.get(device.type, EPOCHS["gpu"])


def time_deepbelief(X: torch.Tensor, batch: int, reconstruction: str = "mean") -> float:
    """Seconds per epoch of the trainer (the data already on its device)."""
    generator = make_generator(0, X.device)
    model = RBM(X.shape[1], N_HIDDEN, generator=generator, device=X.device)
    sampler = CD(1, reconstruction=reconstruction)
    epochs = epochs_on(X.device)
    if X.device.type != "cpu":  # a warm-up epoch: kernels loaded, cuBLAS set up
        RBMTrainer(model, sampler, epochs=1, batch_size=batch, monitor_rows=0).fit(X)
    trainer = RBMTrainer(
        model, sampler, epochs=epochs, batch_size=batch, monitor_rows=0, generator=generator
    )
    start = clock(X.device)
    trainer.fit(X)
    return (clock(X.device) - start) / epochs


def time_estimator(X: np.ndarray, batch: int, device: torch.device) -> float:
    """Seconds per epoch of the scikit-learn estimator with its defaults (CD-1, the same rate
    and momentum as the trainer, per-epoch monitors on 1000 rows), on the NumPy array (its
    copy to the device included)."""
    epochs = epochs_on(device)
    if device.type != "cpu":
        deepbelief.RBM(N_HIDDEN, batch_size=batch, n_iter=1, device=device.type).fit(X)
    rbm = deepbelief.RBM(
        N_HIDDEN, batch_size=batch, n_iter=epochs, random_state=0, device=device.type
    )
    start = clock(device)
    rbm.fit(X)
    return (clock(device) - start) / epochs


def time_sklearn(X: np.ndarray, batch: int) -> float:
    rbm = BernoulliRBM(N_HIDDEN, batch_size=batch, n_iter=1, random_state=0)
    start = time.perf_counter()
    rbm.fit(X)
    return time.perf_counter() - start


def time_ceiling(X: torch.Tensor, batch: int) -> float:
    """Seconds per epoch of the matrix products of CD-1, nothing else."""
    W = torch.randn(X.shape[1], N_HIDDEN, device=X.device) * 0.01
    epochs = epochs_on(X.device)
    for warm_up in (True, False) if X.device.type != "cpu" else (False,):
        start = clock(X.device)
        for _ in range(1 if warm_up else epochs):
            for v0 in torch.split(X, batch):
                p0 = v0 @ W
                v1 = p0 @ W.t()
                p1 = v1 @ W
                v0.t() @ p0
                v1.t() @ p1
    return (clock(X.device) - start) / epochs


def time_deepbelief_sampled(X: torch.Tensor, batch: int) -> float:
    return time_deepbelief(X, batch, reconstruction="sample")


def one_thread(batch: int) -> bool:
    """Whether the trainer runs this batch size's updates on one CPU thread (its policy for
    small products, ``deepbelief.loop.ONE_THREAD_MACS``)."""
    return batch * 784 * N_HIDDEN < ONE_THREAD_MACS


def time_ceiling_one_thread(X: torch.Tensor, batch: int) -> float:
    """:func:`time_ceiling` on one thread: the products on the threads the trainer uses."""
    torch.set_num_threads(1)
    return time_ceiling(X, batch)


TIMERS = {
    "ceiling": time_ceiling,
    "deepbelief": time_deepbelief,
    "sklearn": time_sklearn,
    "deepbelief-sampled": time_deepbelief_sampled,
    "estimator": time_estimator,
    "ceiling-1t": time_ceiling_one_thread,  # timed only where the trainer runs one thread
}
GPU_TIMERS = ("ceiling", "deepbelief", "estimator")  # scikit-learn has no GPU path


def worker(method: str, batch: int, mnist: Path, device: torch.device) -> None:
    images, _ = load_mnist(mnist, "train")
    X = images.astype(np.float32)
    if method == "sklearn":
        print(time_sklearn(X, batch))
    elif method == "estimator":
        print(time_estimator(X, batch, device))
    else:
        print(TIMERS[method](torch.from_numpy(X).to(device), batch))


def measure(method: str, batch: int, mnist: Path, device: str = "cpu") -> float:
    command = [sys.executable, __file__, "--worker", method, "--batch", str(batch)]
    command += ["--device", device, "--gpu-epochs", str(EPOCHS["gpu"])]
    out = subprocess.run(command + ["--mnist", str(mnist)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"{method} worker failed: {out.stderr.strip().splitlines()[-1]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", help="default: 10 100 1000 (GPU: 100 1000 10000)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="epochs timed per method (median)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda, cuda:N")
    parser.add_argument("--gpu-epochs", type=int, default=5, help="epochs per GPU timing")
    parser.add_argument("--worker", choices=sorted(TIMERS), help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    EPOCHS["gpu"] = args.gpu_epochs
    device = torch.device(args.device)
    if args.worker:
        return worker(args.worker, args.batch, args.mnist, device)
    if device.type != "cpu":
        return gpu_table(args, device)
    args.batch_sizes = args.batch_sizes or [10, 100, 1000]

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
        f"{'sampled/ceil':>13} {'sklearn/sampled':>16} {'est/ceiling':>12} {'est/db':>7} "
        f"{'ceil-1t s':>10} {'db/ceil-1t':>11}"
    )
    for batch in args.batch_sizes:
        methods = [m for m in TIMERS if m != "ceiling-1t" or one_thread(batch)]
        times = {m: [] for m in methods}
        for _ in range(args.repeats):
            for method in methods:
                times[method].append(measure(method, batch, args.mnist))
        c, d, s, d2, e = (statistics.median(times[m]) for m in methods[:5])
        c1 = statistics.median(times["ceiling-1t"]) if one_thread(batch) else None
        single = f"{c1:>10.2f} {d / c1:>11.2f}" if c1 else f"{'-':>10} {'-':>11}"
        print(
            f"{batch:>6} {c:>10.2f} {d:>13.2f} {s:>10.2f} {d2:>10.2f} {e:>12.2f} {d / c:>11.2f} "
            f"{s / d:>11.2f} {d2 / c:>13.2f} {s / d2:>16.2f} {e / c:>12.2f} {e / d:>7.2f} "
            f"{single}",
            flush=True,
        )
    if any(one_thread(b) for b in args.batch_sizes):
        print(
            "ceil-1t: the ceiling's products on one thread, where the trainer runs one (batch x "
            f"784 x {N_HIDDEN} < {ONE_THREAD_MACS} multiply-adds: two threads lose several "
            "times over when another process keeps a core busy)"
        )


def gpu_table(args, device: torch.device) -> None:
    """The trainer, the estimator and the ceiling on a GPU: seconds per epoch, samples per
    second and each one's fraction of the ceiling's pace."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    print(f"MNIST train (60000, 784), 784-{N_HIDDEN} binary RBM, CD-1, float32, {name}")
    print(
        f"torch={torch.__version__} tf32={torch.backends.cuda.matmul.allow_tf32} "
        f"repeats={args.repeats} (medians), {args.gpu_epochs} epochs per timing after a warm-up"
    )
    print(
        f"{'batch':>6} {'ceiling s':>10} {'trainer s':>10} {'estimator s':>12} "
        f"{'ceiling/s':>10} {'trainer/s':>10} {'estimator/s':>12} {'tr/ceil':>8} {'est/ceil':>9}"
    )
    for batch in args.batch_sizes or [100, 1000, 10000]:
        times = {m: [] for m in GPU_TIMERS}
        for _ in range(args.repeats):
            for method in GPU_TIMERS:
                times[method].append(measure(method, batch, args.mnist, str(device)))
        c, d, e = (statistics.median(times[m]) for m in GPU_TIMERS)
        rows = 60000
        print(
            f"{batch:>6} {c:>10.4f} {d:>10.4f} {e:>12.4f} {rows / c:>10.0f} {rows / d:>10.0f} "
            f"{rows / e:>12.0f} {d / c:>8.2f} {e / c:>9.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
