"""Fine-tuning speed: an epoch of backprop on the unfolded 784-500-500-2000-10 DBN against a
plain PyTorch MLP of the same shape, trained in the same process (issue 16).

    python benchmarks/finetune_throughput.py [--batch-sizes 100 250] [--repeats 3]

deepbelief: ``deepbelief.finetune.finetune`` on ``DBN.to_feedforward`` (Linear layers that
share the RBMs' Parameters), SGD with momentum 0.9, no dropout. Plain: ``nn.Sequential`` of
``nn.Linear`` and ``nn.Sigmoid``, ``torch.optim.SGD``, the textbook loop (shuffle, zero_grad,
cross-entropy, backward, step). Each repeat times one epoch of each, alternating; the
medians are compared. Target: deepbelief within 1.1x of the plain MLP.
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
import torch.nn.functional as F
from torch import nn

from deepbelief.data import load_mnist
from deepbelief.finetune import finetune
from deepbelief.nn import DBN

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = ROOT.parent / "shared" / "datasets" / "mnist"
SIZES = (784, 500, 500, 2000)


def plain_mlp(generator: torch.Generator) -> nn.Sequential:
    layers: list[nn.Module] = []
    for n_in, n_out in zip(SIZES, SIZES[1:], strict=False):
        layers += [nn.Linear(n_in, n_out), nn.Sigmoid()]
    layers.append(nn.Linear(SIZES[-1], 10))
    with torch.no_grad():
        for p in nn.Sequential(*layers).parameters():
            p.normal_(0, 0.01, generator=generator)
    return nn.Sequential(*layers)


def time_plain(network, optimizer, X, y, batch, generator) -> float:
    start = time.perf_counter()
    for rows in torch.split(torch.randperm(len(X), generator=generator), batch):
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(network(X[rows]), y[rows]).backward()
        optimizer.step()
    return time.perf_counter() - start


def time_deepbelief(network, X, y, batch, generator) -> float:
    start = time.perf_counter()
    finetune(network, X, y, "classification", epochs=1, batch_size=batch, learning_rate=0.1,
             momentum=0.9, generator=generator)  # fmt: skip
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 250])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    images, labels = load_mnist(args.mnist, "train")
    X = torch.from_numpy(images.astype(np.float32))
    y = torch.from_numpy(labels.astype(np.int64))
    print(f"MNIST train {tuple(X.shape)}, {'-'.join(map(str, SIZES))}-10, SGD momentum 0.9, "
          "float32, CPU")  # fmt: skip
    print(f"{platform.processor() or platform.machine()}; nproc {os.cpu_count()}; "
          f"torch {torch.__version__}; threads {torch.get_num_threads()}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}; repeats {args.repeats} (medians)")  # fmt: skip
    print(f"{'batch':>6} {'plain s':>8} {'deepbelief s':>13} {'db/plain':>9}")
    for batch in args.batch_sizes:
        g = torch.Generator().manual_seed(0)
        plain = plain_mlp(g)
        optimizer = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
        ours = DBN.from_sizes(list(SIZES), generator=g).to_feedforward(n_outputs=10)
        times: dict[str, list[float]] = {"plain": [], "deepbelief": []}
        for _ in range(args.repeats):
            times["plain"].append(time_plain(plain, optimizer, X, y, batch, g))
            times["deepbelief"].append(time_deepbelief(ours, X, y, batch, g))
        a, b = (statistics.median(times[k]) for k in ("plain", "deepbelief"))
        print(f"{batch:>6} {a:>8.2f} {b:>13.2f} {b / a:>9.2f}", flush=True)
        print(f"       per repeat: plain {[round(t, 2) for t in times['plain']]}, "
              f"deepbelief {[round(t, 2) for t in times['deepbelief']]}")  # fmt: skip
    print("target: deepbelief within 1.1x of the plain MLP")


if __name__ == "__main__":
    main()
