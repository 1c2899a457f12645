"""AIS test log-likelihood of binary RBMs (and a two-layer DBN's lower bound) on MNIST.

MNIST is binarized stochastically, once, with fixed seeds: each pixel intensity in [0, 1] is
the probability of a 1, drawn by ``torch.bernoulli`` from ``torch.Generator`` seeds
``--binarize-seed`` (training images) and ``--binarize-seed + 1`` (test images), as
Salakhutdinov & Murray (2008) binarized theirs. By default (``--sample-data``) the main model
and the DBN's second layer train on a fresh draw of every batch from the grey levels instead
(from the run's ``--seed``; the test images keep their one fixed draw): training data
augmentation that the published models did not have, reported as such;
``--no-sample-data`` trains on the fixed draw.

Phases, each timed:

1. the main model: a 784-500 binary RBM trained by PCD (or PT, ``--sampler``) with the
   learning rate decaying linearly to zero, its epochs re-planned to fill ``--budget``
   seconds (default 3,540: the hour less a minute of slack);
2. its log Z by AIS: ``--ais-runs`` runs over Salakhutdinov & Murray's 14,501 inverse
   temperatures, from a base-rate model fitted to the training images; the AIS speed target
   is 100 runs x 14,500 distributions in <= 30 s on 2 CPU cores;
3. the average test (and training-subset) log-likelihood, with the bounds of log Z carried
   through;
4. a CD-1 model for comparison (published: -125.53 nats, CD-1, 500 hidden units);
5. unless ``--no-dbn``: a second RBM (500-``--dbn-hidden``) trained on samples of the main
   model's hidden units, started by default as the main RBM upside down (``--dbn-init``), and
   the two-layer DBN's variational lower bound on the test set (published: -86.22 nats).

Targets: test log-likelihood >= -85.0 nats with training <= 60 minutes on 2 CPU cores.
Published: -86.34 (CD-25, 500 hidden units, Salakhutdinov & Murray 2008).

    python benchmarks/mnist_likelihood.py [--mnist DIR] [--json FILE]
    python benchmarks/mnist_likelihood.py --fast      # a smoke run: minutes, not an hour
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from deepbelief.data import load_mnist
from deepbelief.evaluation import ais_log_partition, dbn_lower_bound, log_likelihood
from deepbelief.nn import DBN, RBM
from deepbelief.training import (
    Callback,
    ProgressBar,
    RBMTrainer,
    make_generator,
    native_bfloat16,
)

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist"
TRAIN_BUDGET_S = 60 * 60
AIS_BUDGET_S = 30.0
TARGET = -85.0
PUBLISHED = {
    "main": "-86.34 (CD-25, Salakhutdinov & Murray 2008); target >= -85.0",
    "cd1": "-125.53 (CD-1, Salakhutdinov & Murray 2008)",
    "dbn": "-86.22 (DBN lower bound, Salakhutdinov & Murray 2008)",
}
FAST = dict(
    epochs=3, budget=None, cd1_epochs=1, dbn_epochs=1, betas=1000, n_test=2000, dbn_samples=5
)


def say(line: str) -> None:
    tqdm.write(line)
    sys.stdout.flush()


class EpochLog(Callback):
    """A line every ``every`` epochs (with the reconstruction error of ``rows``), and the
    projected training time after the first."""

    def __init__(self, name: str, every: int, rows: torch.Tensor):
        self.name, self.every, self.rows, self.start = name, max(1, every), rows, 0.0

    def on_train_begin(self, trainer):
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer, metrics):
        epoch = metrics["epoch"]
        elapsed = time.perf_counter() - self.start
        if epoch == 1:
            say(f"  {self.name}: epoch 1 took {elapsed:.1f} s; ~{elapsed * trainer.epochs:.0f} s")
        if epoch % self.every == 0 or epoch == trainer.epochs:
            with torch.no_grad():
                error = float(((trainer.model.reconstruct(self.rows) - self.rows) ** 2).mean())
            say(
                f"  {self.name} epoch {epoch:>5}/{trainer.epochs}  {elapsed:8.1f} s  "
                f"lr {metrics['learning_rate']:.3g}  reconstruction error {error:.5f}"
            )


class Budget(Callback):
    """Re-plans ``trainer.epochs`` every ``every`` epochs to the number the measured seconds
    per epoch fit into ``seconds`` (the linear learning-rate decay follows the new plan from
    the next update): either way until 70% of the run, afterwards only fewer epochs (a machine
    that slows late would otherwise overrun the budget)."""

    def __init__(self, name: str, seconds: float, every: int = 50):
        self.name, self.seconds, self.every, self.start = name, seconds, every, 0.0

    def on_train_begin(self, trainer):
        self.start = time.perf_counter()
        self.last = (0, self.start)

    def on_epoch_end(self, trainer, metrics):
        epoch = metrics["epoch"]
        if epoch % self.every or epoch >= trainer.epochs:
            return
        now = time.perf_counter()
        elapsed, (last_epoch, last_time) = now - self.start, self.last
        late = epoch >= 0.7 * trainer.epochs
        per_epoch = elapsed / epoch
        if late:  # the slower of the whole run and the latest epochs
            per_epoch = max(per_epoch, (now - last_time) / (epoch - last_epoch))
        self.last = (epoch, now)
        planned = epoch + int((self.seconds - elapsed) / per_epoch)
        if late:
            planned = max(min(planned, trainer.epochs), epoch + 1)
        if planned != trainer.epochs:
            say(f"  {self.name}: {per_epoch:.3f} s/epoch: {planned} epochs fit the budget")
            trainer.epochs = planned


class LikelihoodMonitor(Callback):
    """Every ``every`` epochs (and at the last), a quick AIS estimate of log Z (``betas``
    distributions) and the log-likelihoods of ``train_rows`` and ``test_rows`` with it.

    The training rows alone choose: the model with the best training-subset figure is kept,
    and :meth:`restore_best` reinstates it when the last model fell more than ``margin``
    nats below it (a run that ran away). The test figure is only printed, for the curve.
    """

    def __init__(self, name, every, data, train_rows, test_rows, betas, seed, margin=1.0):
        self.name, self.every, self.data, self.betas = name, every, data, betas
        self.train_rows, self.test_rows, self.seed = train_rows, test_rows, seed
        self.margin, self.curve = margin, []
        self.best, self.best_state, self.kept = None, None, None  # kept: the epoch reinstated

    def on_epoch_end(self, trainer, metrics):
        epoch = metrics["epoch"]
        if epoch % self.every and epoch != trainer.epochs:
            return
        model, start = trainer.model, time.perf_counter()
        generator = make_generator(self.seed, self.data.device)
        ais = ais_log_partition(model, data=self.data, betas=self.betas, generator=generator)
        train = log_likelihood(model, self.train_rows, log_z=ais.log_z)
        test = log_likelihood(model, self.test_rows, log_z=ais.log_z)
        self.curve.append(dict(epoch=epoch, log_z=ais.log_z, train=train, test=test))
        if self.best is None or train > self.best[1]:
            self.best = (epoch, train)
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        say(
            f"  {self.name} epoch {epoch:>5}: quick AIS log Z {ais.log_z:.2f} (ESS {ais.ess:.0f}, "
            f"{ais.n_betas} distributions), training subset {train:.2f}, test subset "
            f"{test:.2f} nats ({time.perf_counter() - start:.1f} s)"
        )

    def restore_best(self, model) -> int | None:
        """Reinstate the best model when the last fell ``margin`` below it; its epoch or None."""
        last = self.curve[-1]["train"] if self.curve else None
        if self.best is None or last >= self.best[1] - self.margin:
            return None
        model.load_state_dict(self.best_state)
        self.kept = self.best[0]
        say(
            f"  {self.name}: the last model ({last:.2f} nats on the training subset) fell "
            f"more than {self.margin} below epoch {self.best[0]}'s ({self.best[1]:.2f}): kept "
            f"epoch {self.best[0]}"
        )
        return self.kept


def binarize(images, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.bernoulli(torch.from_numpy(images), generator=generator)


def train(args, name, X, n_hidden, sampler, k, epochs, learning_rate, seed, centering=False,
          budget=None, monitor=None, sample_data=False, start=None):  # fmt: skip
    """Train one binary RBM on ``X`` (re-planning its epochs to fill ``budget`` seconds when
    given; with a :class:`LikelihoodMonitor`, keeping its choice; with ``sample_data``, ``X``
    holds probabilities and every batch is a fresh draw), from the RBM ``start`` when given
    (its biases kept); returns (model, trainer, seconds)."""
    generator = make_generator(seed, X.device)
    fresh = start is None
    model = RBM(X.shape[1], n_hidden, generator=generator, device=X.device) if fresh else start
    trainer = RBMTrainer(
        model,
        sampler=sampler,
        k=k,
        n_chains=args.n_chains,
        epochs=epochs,
        batch_size=args.batch_size,
        learning_rate=learning_rate,
        weight_decay=args.weight_decay,
        monitor_rows=0,
        centering=centering,
        sample_data=sample_data,
        init_visible_bias=fresh,
        mixed_precision=args.mixed_precision,
        generator=generator,
        callbacks=[
            EpochLog(name, args.log_every, X[:1000]),
            ProgressBar(desc=name, disable=args.quiet or None),
            *([Budget(name, budget)] if budget else []),
            *([monitor] if monitor else []),
        ],
        momentum=min(0.5, args.momentum),
        final_momentum=args.momentum,
    )
    start = time.perf_counter()
    trainer.fit(X)
    if monitor:
        monitor.restore_best(model)
    return model, trainer, time.perf_counter() - start


def model_samples(trainer, X, n, steps, generator):
    """``n`` samples of the trained model: its persistent chains (PCD; PT's beta = 1 chains)
    or training rows, run ``steps`` more Gibbs steps."""
    chains = getattr(trainer.sampler, "chains", None)
    if chains is not None and chains.dim() == 3:
        chains = chains[0]
    start = chains[:n] if chains is not None and len(chains) >= n else X[:n]
    return trainer.model.gibbs(start, steps, generator=generator)


def estimate(args, name, trainer, data, seed):
    """Forward AIS log Z of the trained model, and the reverse estimate from its samples (which
    errs the other way); returns (forward AISResult, reverse AISResult, forward seconds)."""
    model, generator = trainer.model, make_generator(seed, data.device)
    start = time.perf_counter()
    forward = ais_log_partition(
        model, data=data, n_runs=args.ais_runs, betas=args.betas, generator=generator
    )
    seconds = time.perf_counter() - start
    samples = model_samples(trainer, data, args.ais_runs, args.reverse_steps, generator)
    reverse = ais_log_partition(
        model, data=data, betas=args.betas, generator=generator, reverse_from=samples
    )
    for kind, r in (("forward", forward), ("reverse", reverse)):
        say(
            f"  {name}, {kind}: log Z = {r.log_z:.3f} (bounds {r.log_z_lower:.3f} .. "
            f"{r.log_z_upper:.3f}), ESS {r.ess:.1f} of {len(r.log_weights)}, "
            f"{r.n_betas} distributions" + (f", {seconds:.1f} s" if kind == "forward" else "")
        )
    return forward, reverse, seconds


def likelihoods(model, ais, X_test, X_train):
    """(test, test with log Z's upper bound, test with its lower bound, training subset)."""
    test = log_likelihood(model, X_test, log_z=ais.log_z)
    shift_up, shift_down = ais.log_z_upper - ais.log_z, ais.log_z - ais.log_z_lower
    train = log_likelihood(model, X_train, log_z=ais.log_z)
    return test, test - shift_up, test + shift_down, train


def row(phase, seconds=None, value=None, reference=""):
    s = "" if seconds is None else f"{seconds:.1f}"
    v = "" if value is None else f"{value:.2f}"
    return f"{phase:<52} {s:>9} {v:>10}   {reference}"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--mnist", type=Path, default=DEFAULT_MNIST, help="folder of the IDX files")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--fast", action="store_true", help=f"smoke configuration: {FAST}")
    p.add_argument("--save", type=Path, help="checkpoint of the trained main RBM (and chains)")
    p.add_argument(
        "--load", type=Path, help="evaluate this --save checkpoint instead of training one"
    )
    p.add_argument("--seed", type=int, default=0, help="seeds every torch.Generator")
    p.add_argument("--binarize-seed", type=int, default=0, help="train; test uses seed + 1")
    p.add_argument("--threads", type=int, help="torch.set_num_threads; unset: torch's choice")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--n-test", type=int, default=10000, help="first N test images")
    p.add_argument("--log-every", type=int, default=200, help="epochs between log lines")
    p.add_argument(
        "--precision",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="training products in bfloat16 (float32 parameters and sampling); auto: where "
        "the CPU or GPU has native bfloat16",
    )
    g = p.add_argument_group("main RBM (784-500)")
    g.add_argument("--hidden", type=int, default=500)
    g.add_argument("--sampler", choices=["pcd", "pt", "cd"], default="pcd")
    g.add_argument("--k", type=int, default=1, help="Gibbs steps per update")
    g.add_argument("--epochs", type=int, default=3000, help="re-planned by --budget")
    g.add_argument("--lr", type=float, default=0.01, help="decays linearly to 0 (PCD, PT)")
    g.add_argument("--batch-size", type=int, default=100)
    g.add_argument("--n-chains", type=int, default=100, help="persistent chains (PCD, PT)")
    g.add_argument("--weight-decay", type=float, default=2e-4)
    g.add_argument("--momentum", type=float, default=0.9, help="after 5 epochs at min(0.5, it)")
    g.add_argument(
        "--centering",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="centered gradients (Melchior et al. 2016), also for the DBN's second layer "
        "(learns faster early, not to a better end: benchmarks/RESULTS.md)",
    )
    g.add_argument(
        "--sample-data",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train on a fresh binary draw of every batch from the grey levels (dynamic "
        "binarization; the test images keep their fixed draw); --no-sample-data trains on the "
        "fixed draw, as the published models did",
    )
    g.add_argument(
        "--budget",
        type=float,
        default=3540.0,
        help="seconds of training: re-plan --epochs to fill them (after 70%% of the run only "
        "downwards)",
    )
    g.add_argument(
        "--monitor-every",
        type=int,
        default=0,
        help="every N epochs: quick AIS (--monitor-betas) and the log-likelihood of 1,000 "
        "training and 1,000 test images; the training figure keeps the best model if the "
        "last fell more than 1 nat below it (0: off)",
    )
    g.add_argument("--monitor-betas", type=int, default=3000, help="the quick AIS's distributions")
    g = p.add_argument_group("AIS")
    g.add_argument("--ais-runs", type=int, default=100)
    g.add_argument("--betas", type=int, help="number of distributions (default: 14,501)")
    g.add_argument("--reverse-steps", type=int, default=1000, help="Gibbs steps before reverse AIS")
    g = p.add_argument_group("comparison models")
    g.add_argument("--cd1-epochs", type=int, default=20, help="CD-1 model (0: skip)")
    g.add_argument("--no-dbn", action="store_true", help="skip the two-layer DBN")
    g.add_argument("--dbn-hidden", type=int, default=2000, help="second layer's units")
    g.add_argument("--dbn-epochs", type=int, default=100, help="second layer's PCD epochs")
    g.add_argument(
        "--dbn-init",
        choices=["transposed", "random"],
        default="transposed",
        help="second layer's start: the main RBM upside down, extra units near zero (the DBN "
        "starts as the RBM: Hinton et al. 2006), or small random weights",
    )
    g.add_argument("--dbn-samples", type=int, default=100, help="Monte Carlo samples per row")
    return p


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fast:
        parser.set_defaults(**FAST)
        args = parser.parse_args(argv)
    native = native_bfloat16("cpu")
    args.mixed_precision = args.precision == "bfloat16" or (args.precision == "auto" and native)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = shlex.join(["python", *sys.argv]) if argv is None else shlex.join(argv)
    print(f"command: {command}")
    print(
        f"date={datetime.datetime.now().astimezone().isoformat(timespec='seconds')} "
        f"nproc={os.cpu_count()} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"device=cpu OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print("settings: " + " ".join(f"{k}={v}" for k, v in settings.items()))
    grey = load_mnist(args.mnist, "train")[0]
    X = binarize(grey, args.binarize_seed)
    X_fit = torch.from_numpy(grey) if args.sample_data else X
    X_test = binarize(load_mnist(args.mnist, "test")[0], args.binarize_seed + 1)[: args.n_test]
    X_sub = X[:10000]
    rows, result = [], {"command": command, "settings": settings}

    name = f"{args.sampler.upper()}-{args.k} RBM 784-{args.hidden}"
    if args.centering:
        name = "centered " + name
    if args.sample_data:
        name += ", fresh draws"
    print(f"\n== {name}, {args.epochs} epochs")
    monitor = None
    if args.monitor_every:
        monitor = LikelihoodMonitor(
            name, args.monitor_every, X, X[:1000], X_test[:1000], args.monitor_betas,
            args.seed + 7,
        )  # fmt: skip
    if args.load:
        trainer = RBMTrainer.from_checkpoint(args.load)
        model, seconds = trainer.model, json.loads(args.load.with_suffix(".json").read_text())
        say(f"  loaded {args.load}: {trainer.epoch} epochs, trained in {seconds:.1f} s")
    else:
        model, trainer, seconds = train(
            args, name, X_fit, args.hidden, args.sampler, args.k, args.epochs, args.lr,
            args.seed, centering=args.centering, budget=args.budget, monitor=monitor,
            sample_data=args.sample_data,
        )  # fmt: skip
    if args.save:
        trainer.save_checkpoint(args.save)
        args.save.with_suffix(".json").write_text(json.dumps(seconds))
    epochs_run = trainer.epoch
    ais, reverse, ais_seconds = estimate(args, f"AIS, {name}", trainer, X, args.seed + 1)
    test, low, high, train_ll = likelihoods(model, ais, X_test, X_sub)
    pessimistic = log_likelihood(model, X_test, log_z=reverse.log_z)
    agree = abs(ais.log_z - reverse.log_z) <= 1.0
    verdict = "met" if test >= TARGET and seconds <= TRAIN_BUDGET_S and agree else "not met"
    rows += [
        row(f"{name} ({epochs_run} ep): training", seconds),
        row(f"  AIS log Z ({args.ais_runs} runs x {ais.n_betas})", ais_seconds, ais.log_z,
            f"target <= {AIS_BUDGET_S:.0f} s; ESS {ais.ess:.1f}"),
        row("  reverse AIS log Z (from the model's samples)", None, reverse.log_z,
            "forward and reverse " + ("agree within 1 nat" if agree else "DISAGREE")),
        row("  test log-likelihood", None, test, f"{PUBLISHED['main']}: {verdict}"),
        row("    with log Z at its upper / lower bound", None, None, f"{low:.2f} / {high:.2f}"),
        row("    with the reverse estimate (pessimistic)", None, pessimistic),
        row("  training log-likelihood (first 10,000" + (", seed-0 draw)" if args.sample_data
            else ")"), None, train_ll),
    ]  # fmt: skip
    if monitor:
        result["monitor"] = dict(curve=monitor.curve, kept_epoch=monitor.kept)
    result["main"] = dict(
        epochs=epochs_run, train_seconds=seconds, ais_seconds=ais_seconds, log_z=ais.log_z,
        ess=ais.ess, log_z_bounds=[ais.log_z_lower, ais.log_z_upper],
        reverse_log_z=reverse.log_z,
        test=test, test_reverse=pessimistic, train=train_ll,
    )  # fmt: skip

    if args.cd1_epochs:
        print(f"\n== CD-1 RBM 784-{args.hidden}, {args.cd1_epochs} epochs")
        cd1, cd1_trainer, cd1_seconds = train(
            args, "CD-1 RBM", X, args.hidden, "cd", 1, args.cd1_epochs, 0.1, args.seed + 2
        )
        cd1_ais, _, _ = estimate(args, "AIS, CD-1 RBM", cd1_trainer, X, args.seed + 3)
        cd1_test = likelihoods(cd1, cd1_ais, X_test, X_sub)[0]
        rows.append(row(f"CD-1 RBM ({args.cd1_epochs} ep)", cd1_seconds, cd1_test,
                        PUBLISHED["cd1"]))  # fmt: skip
        result["cd1"] = dict(train_seconds=cd1_seconds, log_z=cd1_ais.log_z, test=cd1_test)

    if not args.no_dbn:
        print(f"\n== two-layer DBN: a {args.hidden}-{args.dbn_hidden} RBM on the main model")
        generator = make_generator(args.seed + 4, X.device)
        if args.sample_data:  # the second layer draws its own samples of Q(h | v)
            features = model.hidden_mean(X).detach()
        else:
            features = model.sample_hidden(X, generator=generator).detach()
        start = None
        if args.dbn_init == "transposed":
            start = model.transposed(args.dbn_hidden, generator=generator)
        top, top_trainer, top_seconds = train(
            args, "second-layer RBM", features, args.dbn_hidden, args.sampler, args.k,
            args.dbn_epochs, args.lr, args.seed + 5, centering=args.centering,
            sample_data=args.sample_data, start=start,
        )  # fmt: skip
        top_ais, _, _ = estimate(
            args, "AIS, second-layer RBM", top_trainer, features, args.seed + 6
        )
        dbn = DBN([model, top])
        start = time.perf_counter()
        bound = dbn_lower_bound(
            dbn, X_test, log_z=top_ais.log_z, n_samples=args.dbn_samples, generator=generator
        )
        bound_seconds = time.perf_counter() - start
        rows.append(row(f"DBN 784-{args.hidden}-{args.dbn_hidden} lower bound (+{args.dbn_epochs}"
                        " ep)", top_seconds, bound, PUBLISHED["dbn"]))  # fmt: skip
        result["dbn"] = dict(
            train_seconds=top_seconds, log_z=top_ais.log_z, bound=bound,
            bound_seconds=bound_seconds,
        )  # fmt: skip

    print("\n== summary (nats per test image; seconds of training or estimation)")
    print(f"{'phase':<52} {'seconds':>9} {'nats':>10}   published / target")
    for line in rows:
        print(line)
    result["summary"] = rows
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
