"""What lower-precision arithmetic costs on a GPU: TF32 matrix products for RBM training and
its AIS log-likelihood, bfloat16 autocast (``mixed_precision=True``) for fine-tuning.

Through the estimators, as a user would: ``deepbelief.RBM(500)`` on binarized MNIST (pixels
above 0.5), timed and scored by ``log_likelihood`` on the test images, with TF32 off and on
(``torch.backends.cuda.matmul.allow_tf32``, the global switch PyTorch gives users); then
``DBNClassifier()`` with its defaults, ``mixed_precision`` off and on, timed and scored by
test error. Same seeds in every arm: the differences are the arithmetic's.

    python benchmarks/precision.py [--mnist DIR] [--device cuda] [--rows 60000] [--epochs 5]

On a CPU it runs (TF32 is a no-op there, bfloat16 is slow without AVX512-BF16/AMX), which is
how it is tested; its figures are meant for a GPU (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import deepbelief
from deepbelief.data import load_mnist

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def likelihood_arm(X, X_test, args, tf32: bool) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    rbm = deepbelief.RBM(
        args.hidden, n_iter=args.epochs, batch_size=100, random_state=0, device=args.device
    )
    sync(args.device)
    start = time.perf_counter()
    rbm.fit(X)
    sync(args.device)
    seconds = time.perf_counter() - start
    ll = rbm.log_likelihood(X_test, n_runs=args.ais_runs)
    return {"fit_s": seconds, "test_ll": float(ll)}


def classifier_arm(X, y, X_test, y_test, args, mixed: bool) -> dict:
    torch.backends.cuda.matmul.allow_tf32 = False
    clf = deepbelief.DBNClassifier(mixed_precision=mixed, random_state=0, device=args.device)
    if args.classifier_epochs:
        clf.set_params(epochs=args.classifier_epochs, pretrain_epochs=args.classifier_epochs)
    sync(args.device)
    start = time.perf_counter()
    clf.fit(X, y)
    sync(args.device)
    seconds = time.perf_counter() - start
    return {"fit_s": seconds, "test_error_pct": 100 * (1 - clf.score(X_test, y_test))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    p.add_argument("--device", default="cuda")
    p.add_argument("--rows", type=int, default=60000, help="first N training images")
    p.add_argument("--epochs", type=int, default=5, help="RBM epochs")
    p.add_argument("--hidden", type=int, default=500)
    p.add_argument("--ais-runs", type=int, default=100)
    p.add_argument("--classifier-epochs", type=int, help="default: the estimator's own")
    p.add_argument("--classifier-rows", type=int, help="first N rows for it (default: --rows)")
    p.add_argument("--skip", choices=("likelihood", "classifier"), nargs="*", default=[])
    args = p.parse_args()
    images, labels = load_mnist(args.mnist, "train")
    test_images, test_labels = load_mnist(args.mnist, "test")
    X, y = images[: args.rows].astype(np.float32), labels[: args.rows]
    binary = (X > 0.5).astype(np.float32)
    binary_test = (test_images > 0.5).astype(np.float32)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    print(f"# {name}; torch {torch.__version__}; {len(X)} training rows")
    if "likelihood" not in args.skip:
        for tf32 in (False, True):
            r = likelihood_arm(binary, binary_test, args, tf32)
            print(f"RBM({args.hidden}) {args.epochs} epochs, tf32={tf32}: fit {r['fit_s']:.1f} s, "
                  f"test log-likelihood {r['test_ll']:.2f} nats (AIS, {args.ais_runs} runs)",
                  flush=True)  # fmt: skip
    if "classifier" not in args.skip:
        for mixed in (False, True):
            n = args.classifier_rows or len(X)
            r = classifier_arm(X[:n], y[:n], test_images.astype(np.float32), test_labels, args,
                               mixed)  # fmt: skip
            print(f"DBNClassifier() on {n} rows, mixed_precision={mixed}: fit {r['fit_s']:.1f} s, "
                  f"test error {r['test_error_pct']:.2f} %", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
