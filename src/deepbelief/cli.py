"""The ``deepbelief`` command. No maths here: parse, call the library, report.

Every :class:`DeepBeliefError` and every bad argument ends as one line on stderr and exit
code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from .errors import DeepBeliefError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--quiet", action="store_true", help="no progress output")
    parser = _Parser(prog="deepbelief", description="Deep Belief Networks and RBMs.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    demo = commands.add_parser(
        "demo", parents=[common], help="train an RBM on scikit-learn's digits, plot filters"
    )
    demo.add_argument("-o", "--output", type=Path, default=Path("deepbelief-demo"))
    demo.add_argument("--epochs", type=int, default=20)
    demo.add_argument("--seed", type=int, default=0)
    return parser


def _demo(args) -> int:
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from .estimators import RBM
    from .plots import plot_filters

    if args.epochs < 1:
        raise DeepBeliefError(f"--epochs must be >= 1, got {args.epochs}")
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    args.output.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rbm = RBM(
        n_components=100,
        sampler="cd",
        batch_size=20,
        learning_rate=0.05,
        n_iter=args.epochs,
        random_state=args.seed,
        verbose=0 if args.quiet else 1,
    ).fit(X_train)
    seconds = time.perf_counter() - start
    first, last = rbm.history_[0], rbm.history_[-1]
    print(f"RBM 64-100 (CD-1) on scikit-learn digits, {args.epochs} epochs in {seconds:.1f} s")
    print(
        f"  pseudo-log-likelihood per image: {first['pseudo_log_likelihood']:.2f} (epoch 1) -> "
        f"{last['pseudo_log_likelihood']:.2f} nats (epoch {last['epoch']})"
    )
    print(f"  reconstruction error (MSE per pixel): {last['reconstruction_error']:.4f}")
    held_out = rbm.score(X_test)
    print(f"  held-out pseudo-log-likelihood: {held_out:.2f} nats per image")
    raw = LogisticRegression(max_iter=2000).fit(X_train, y_train).score(X_test, y_test)
    feats = LogisticRegression(max_iter=2000).fit(rbm.transform(X_train), y_train)
    learned = feats.score(rbm.transform(X_test), y_test)
    print(f"  logistic regression accuracy: {raw:.3f} on pixels, {learned:.3f} on RBM features")
    path = args.output / "filters.png"
    plot_filters(rbm.model_.weight, (8, 8), path, title="RBM filters (first 100 hidden units)")
    rbm.save(args.output / "rbm.safetensors")
    print(f"  wrote {path} and {args.output / 'rbm.safetensors'}")
    return int(not np.isfinite(held_out))


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        return {"demo": _demo}[args.command](args)
    except DeepBeliefError as exc:
        if args.debug:
            raise
        print(f"deepbelief: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepbelief: interrupted", file=sys.stderr)
        return 130


def run() -> None:  # console-script entry point
    sys.exit(main())
