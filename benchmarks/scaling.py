"""How an RBM epoch scales: time against rows and hidden units, and peak memory against rows
for data read from a file a block at a time (issue 16).

    python benchmarks/scaling.py [--part time|memory|command|all]

time: one CD-1 epoch (batch 100, float32, the trainer) on random binary rows, timed after a
warm-up epoch; the arithmetic is five products of rows x visible x hidden multiply-adds, so
seconds per multiply-add (ns/GMAC) should stay flat: linear in the rows, linear in the hidden
units of a 784-h RBM, quadratic in h for an h-h RBM (a DBN's upper layers).

memory: the peak resident memory of a fresh process that fits ``RBM(16)`` for one epoch on
a ``.npy`` file of n x 784 float32 rows, read a block at a time (a memory map) against the
same rows loaded into memory.

command: the same for the command line, ``train --model unsupervised`` and ``transform`` of
the file (both read and write a block at a time).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepbelief.nn import RBM
from deepbelief.streams import write_rows
from deepbelief.training import RBMTrainer


def epoch_seconds(rows: int, n_visible: int, n_hidden: int) -> float:
    g = torch.Generator().manual_seed(0)
    X = torch.rand(rows, n_visible, generator=g).lt_(0.3).float()
    model = RBM(n_visible, n_hidden, generator=g)
    trainer = RBMTrainer(model, epochs=1, batch_size=100, monitor_rows=0, generator=g)
    trainer.fit(X)  # warm-up
    trainer.epochs = 2
    start = time.perf_counter()
    trainer.fit(X)
    return time.perf_counter() - start


def time_table() -> None:
    print("one CD-1 epoch, batch 100, float32; GMAC = 5 x rows x visible x hidden / 1e9")
    print(f"{'rows':>7} {'visible':>8} {'hidden':>7} {'GMAC':>7} {'seconds':>8} {'s/GMAC':>7}")
    cases = [(n, 784, 500) for n in (10_000, 20_000, 40_000, 60_000)]
    cases += [(10_000, 784, h) for h in (250, 1000, 2000, 4000)]
    cases += [(10_000, h, h) for h in (250, 500, 1000, 2000, 4000)]
    for rows, v, h in cases:
        gmac = 5 * rows * v * h / 1e9
        seconds = epoch_seconds(rows, v, h)
        print(f"{rows:>7} {v:>8} {h:>7} {gmac:>7.1f} {seconds:>8.2f} {seconds / gmac:>7.3f}",
              flush=True)  # fmt: skip


PEAK = """
import re, sys, numpy as np
from deepbelief import RBM
X = np.load(sys.argv[1], mmap_mode=None if sys.argv[2] == "memory" else "r")
RBM(n_components=16, n_iter=1, batch_size=1000, random_state=0).fit(X)
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1)) / 1024)
"""


def peak_mb(path: Path, mode: str) -> float:
    done = subprocess.run([sys.executable, "-c", PEAK, str(path), mode], capture_output=True,
                          text=True, check=True)  # fmt: skip
    return float(done.stdout.split()[-1])


def memory_table() -> None:
    print("peak resident memory (MB) of a process fitting RBM(16) for one epoch on n x 784 "
          "float32 rows")  # fmt: skip
    print(f"{'rows':>8} {'file MB':>8} {'streamed':>9} {'in memory':>10}")
    for n, path, size in row_files():
        streamed, memory = peak_mb(path, "stream"), peak_mb(path, "memory")
        print(f"{n:>8} {size:>8.0f} {streamed:>9.0f} {memory:>10.0f}", flush=True)


def row_files():
    """``(rows, path, MB)`` of .npy files of 50,000 to 400,000 random binary rows of 784
    float32 values, one at a time (each removed before the next)."""
    block = (np.random.default_rng(0).random((10_000, 784)) < 0.3).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        for n in (50_000, 100_000, 200_000, 400_000):
            path = Path(folder) / f"{n}.npy"
            write_rows(path, (block for _ in range(n // 10_000)), n, 784)
            yield n, path, path.stat().st_size / 2**20
            path.unlink()


COMMAND_PEAK = """
import re, sys
from deepbelief.cli import main
assert main(sys.argv[1:]) == 0
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s*(\\d+) kB", status).group(1)) / 1024)
"""


def command_peak_mb(*argv) -> float:
    done = subprocess.run([sys.executable, "-c", COMMAND_PEAK, *map(str, argv)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return float(done.stdout.split()[-1])


def command_table() -> None:
    print("peak resident memory (MB) of the command line on n x 784 float32 rows: `train "
          "--model unsupervised --layers 16` and `transform` of the file to .npy")  # fmt: skip
    print(f"{'rows':>8} {'file MB':>8} {'train':>7} {'transform':>10}")
    for n, path, size in row_files():
        model, features = path.with_name(f"model{n}"), path.with_name("features.npy")
        train = command_peak_mb("train", path, "--model", "unsupervised", "--layers", 16,
                                "--pretrain-epochs", 1, "-o", model, "--quiet")  # fmt: skip
        transform = command_peak_mb("transform", model, path, "-o", features, "--quiet")
        print(f"{n:>8} {size:>8.0f} {train:>7.0f} {transform:>10.0f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["time", "memory", "command", "all"], default="all")
    args = p.parse_args()
    print(f"{platform.processor() or platform.machine()}; nproc {os.cpu_count()}; "
          f"torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    if args.part in ("time", "all"):
        time_table()
    if args.part in ("memory", "all"):
        memory_table()
    if args.part in ("command", "all"):
        command_table()


if __name__ == "__main__":
    main()
