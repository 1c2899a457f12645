"""Applications on real MNIST, each beside the standard tools measured in the same run (issue 15).

    python benchmarks/applications.py [--part denoise anomaly impute] [--train-rows N]

Part "denoise": one ``deepbelief.RBM(n_components=500, n_iter=EPOCHS)`` trained on the
training images; the test images corrupted by salt-and-pepper noise (10, 20, 30 % of the
pixels set to 0 or 1) and by additive Gaussian noise (sigma 0.3, clipped to [0, 1]); PSNR
(``10 log10(1 / MSE)``, images in [0, 1]) of the noisy input, of scipy's 3x3 median filter
and of ``deepbelief.applications.denoise``: one up-down pass of means (the noise taken as the
state), and told the noise model and level (the noisy pixels taken as evidence: the posterior
mean by mean-field passes and by a Gibbs chain's average). Target: deepbelief above the median
filter at every level.

Part "anomaly": for each digit, ``deepbelief.OutlierDetector`` trained on that digit's
training images scores every test image (the digit normal, the rest anomalous); AUROC per
digit and the mean, beside ``IsolationForest`` and ``OneClassSVM`` (``gamma="scale"``,
``nu=0.1``; on at most --svm-rows training rows, the kernel method's cost being quadratic).
Target: mean AUROC >= 0.95 and above both baselines.

Part "impute": ``deepbelief.RBMImputer(n_components=500)`` (its defaults otherwise: CD for
about 30,000 updates, then multi-prediction training) fitted on the training images, then
the test images with 50 % of the pixels missing at random, and with their lower half
missing; RMSE on the
missing pixels of deepbelief, ``SimpleImputer`` (the training means) and ``KNNImputer`` (fitted
on --knn-rows training rows: its cost grows with them). Target: below both.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
PARTS = ("denoise", "anomaly", "impute")


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    mse = float(np.mean((np.clip(estimate, 0, 1) - clean) ** 2))
    return 10 * np.log10(1 / mse)


def salt_and_pepper(X: np.ndarray, share: float, rng) -> np.ndarray:
    hit = rng.random(X.shape) < share
    return np.where(hit, (rng.random(X.shape) < 0.5).astype(X.dtype), X)


def median_filter(X: np.ndarray) -> np.ndarray:
    from scipy.ndimage import median_filter as filt

    return filt(X.reshape(-1, 28, 28), size=(1, 3, 3), mode="nearest").reshape(len(X), -1)


def denoise_part(args, X, X_test) -> None:
    from deepbelief import RBM
    from deepbelief.applications import denoise

    start = time.perf_counter()
    rbm = RBM(n_components=500, n_iter=args.epochs, random_state=args.seed).fit(X)
    print(
        f"RBM 784-500, {args.epochs} epochs on {len(X)} rows: {time.perf_counter() - start:.0f} s"
    )
    rng = np.random.default_rng(args.seed)
    noises = {f"salt-and-pepper {p} %": ("salt-and-pepper", p / 100) for p in (10, 20, 30)}
    noises["gaussian sigma 0.3"] = ("gaussian", 0.3)
    test = X_test[: args.denoise_rows]
    print(f"test images: {len(test)}; PSNR in dB (higher is better)")
    print(f"{'noise':24} {'noisy':>7} {'median 3x3':>11} {'one pass':>9} {'mean-field':>11} "
          f"{'gibbs':>7}  target")  # fmt: skip
    for name, (noise, level) in noises.items():
        noisy = corrupt(test, noise, level, rng).astype(np.float32)
        told = dict(noise=noise, noise_level=level)
        gibbs = denoise(rbm, noisy, method="gibbs", random_state=args.seed, **told)
        estimates = [noisy, median_filter(noisy), denoise(rbm, noisy),
                     denoise(rbm, noisy, **told), gibbs]  # fmt: skip
        figures = [psnr(e, test) for e in estimates]
        met = "met" if max(figures[3:]) > figures[1] else "not met"
        print(f"{name:24} " + " ".join(f"{f:>{w}.2f}" for f, w in zip(figures, (7, 11, 9, 11, 7)))
              + f"  {met}", flush=True)  # fmt: skip


def corrupt(X: np.ndarray, noise: str, level: float, rng) -> np.ndarray:
    if noise == "salt-and-pepper":
        return salt_and_pepper(X, level, rng)
    return np.clip(X + rng.normal(0, level, X.shape), 0, 1)


def anomaly_part(args, X, y, X_test, y_test) -> None:
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import roc_auc_score
    from sklearn.svm import OneClassSVM

    from deepbelief import OutlierDetector

    print(f"{'digit':>5} {'deepbelief':>11} {'IsolationForest':>16} {'OneClassSVM':>12}  seconds")
    results = []
    for digit in range(10):
        normal, truth = X[y == digit], (y_test == digit).astype(int)
        start = time.perf_counter()
        ours = OutlierDetector(n_components=args.anomaly_hidden, n_iter=args.epochs,
                               random_state=args.seed).fit(normal)  # fmt: skip
        seconds = time.perf_counter() - start
        forest = IsolationForest(random_state=args.seed).fit(normal)
        svm = OneClassSVM(gamma="scale", nu=0.1).fit(normal[: args.svm_rows])
        row = [roc_auc_score(truth, m.score_samples(X_test)) for m in (ours, forest, svm)]
        results.append(row)
        print(f"{digit:>5} {row[0]:>11.4f} {row[1]:>16.4f} {row[2]:>12.4f}  {seconds:.0f}",
              flush=True)  # fmt: skip
    mean = np.mean(results, 0)
    met = mean[0] >= 0.95 and mean[0] > mean[1] and mean[0] > mean[2]
    print(f"{'mean':>5} {mean[0]:>11.4f} {mean[1]:>16.4f} {mean[2]:>12.4f}  target "
          f"(>= 0.95, above both): {'met' if met else 'not met'}")  # fmt: skip


def impute_part(args, X, X_test) -> None:
    from sklearn.impute import KNNImputer, SimpleImputer

    from deepbelief import RBMImputer

    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    ours = RBMImputer(n_components=500, random_state=args.seed).fit(X)
    print(f"RBMImputer fit on {len(X)} rows: {time.perf_counter() - start:.0f} s")
    mean = SimpleImputer().fit(X)
    knn = KNNImputer().fit(X[: args.knn_rows])
    test = X_test[: args.test_rows].astype(np.float64)
    lower = np.zeros(test.shape, bool)
    lower[:, 392:] = True
    masks = {"50 % at random": rng.random(test.shape) < 0.5, "lower half": lower}
    print(f"{'missing':16} {'deepbelief':>11} {'mean':>7} {'KNN':>7}  target")
    for name, mask in masks.items():
        holes = np.where(mask, np.nan, test)
        figures = [np.sqrt(np.mean((m.transform(holes)[mask] - test[mask]) ** 2))
                   for m in (ours, mean, knn)]  # fmt: skip
        met = "met" if figures[0] < min(figures[1:]) else "not met"
        print(f"{name:16} {figures[0]:>11.4f} {figures[1]:>7.4f} {figures[2]:>7.4f}  {met}",
              flush=True)  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    p.add_argument("--part", nargs="+", choices=PARTS, default=list(PARTS))
    p.add_argument("--train-rows", type=int, default=60_000)
    p.add_argument("--test-rows", type=int, default=10_000, help="imputation's test rows")
    p.add_argument("--denoise-rows", type=int, default=10_000, help="denoising's test rows")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--anomaly-hidden", type=int, default=256)
    p.add_argument("--svm-rows", type=int, default=2_000)
    p.add_argument("--knn-rows", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import torch

    from deepbelief.data import load_mnist

    if not args.mnist.is_dir():
        raise SystemExit(f"{args.mnist}: no MNIST folder (the four IDX files)")
    print(f"# {' '.join(sys.argv)}")
    print(f"# {platform.processor() or platform.machine()}; nproc {os.cpu_count()}; "
          f"torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}")  # fmt: skip
    X, y = load_mnist(args.mnist, "train")
    X_test, y_test = load_mnist(args.mnist, "test")
    X, y = X[: args.train_rows], y[: args.train_rows]
    if "denoise" in args.part:
        denoise_part(args, X, X_test)
    if "anomaly" in args.part:
        anomaly_part(args, X, y, X_test, y_test)
    if "impute" in args.part:
        impute_part(args, X, X_test)


if __name__ == "__main__":
    main()
