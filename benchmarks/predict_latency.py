"""Prediction latency: ``DBNClassifier.predict_proba`` on one row at a time, against the bare
forward pass of the same network in float64 (the floor: the products alone), and against a
float64 copy of the model made on every call (what each call cost before the copy was kept).

    python benchmarks/predict_latency.py [--rows 200] [--repeats 5]

The classifier is a 784-500-500-2000-10 DBN (issue 16's fine-tuning shape) fitted for one
epoch on random rows: its speed does not depend on what it learned. Each repeat times every
method over the same rows, alternating; medians of milliseconds per call are compared.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
import warnings

import numpy as np
import torch

from deepbelief import DBNClassifier, dbn_estimators

SIZES = (500, 500, 2000)


def fitted() -> DBNClassifier:
    rng = np.random.default_rng(0)
    X, y = rng.random((200, 784)), rng.integers(0, 10, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch on random labels: undertrained, on purpose
        return DBNClassifier(hidden_layers=SIZES, pretrain_epochs=1, epochs=1,
                             random_state=0).fit(X, y)  # fmt: skip


def per_call(predict, rows) -> float:
    """Milliseconds per call of ``predict`` on each row alone."""
    start = time.perf_counter()
    for row in rows:
        predict(row[None])
    return (time.perf_counter() - start) / len(rows) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    clf = fitted()
    rows = np.random.default_rng(1).random((args.rows, 784))
    exact = copy.deepcopy(clf.network_).to(torch.float64).eval()

    @torch.no_grad()
    def bare(row):
        return torch.softmax(exact(torch.from_numpy(row)), 1).numpy()

    kept = dbn_estimators.float64_copy

    def copied_each_call(row):
        dbn_estimators.float64_copy = lambda m: copy.deepcopy(m).to(torch.float64).eval()
        try:
            return clf.predict_proba(row)
        finally:
            dbn_estimators.float64_copy = kept

    methods = {"bare forward": bare, "predict_proba": clf.predict_proba,
               "copy per call": copied_each_call}  # fmt: skip
    times = {name: [] for name in methods}
    for _ in range(args.repeats):
        for name, predict in methods.items():
            times[name].append(per_call(predict, rows))
    ms = {name: statistics.median(t) for name, t in times.items()}
    print(f"DBNClassifier 784-{'-'.join(map(str, SIZES))}-10, one row per call, CPU")
    print(
        f"nproc={os.cpu_count()} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"machine={platform.machine()} rows={args.rows} repeats={args.repeats} (medians)"
    )
    print(f"{'method':>15} {'ms/call':>8} {'/bare':>6}")
    for name, value in ms.items():
        print(f"{name:>15} {value:8.3f} {value / ms['bare forward']:6.2f}")


if __name__ == "__main__":
    main()
