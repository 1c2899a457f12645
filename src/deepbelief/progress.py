"""What a training run shows while it runs: a tqdm bar on a terminal, one line per epoch
elsewhere (a log file, a pipe, a CI job), nothing when quiet.

Every phase of a fit (the pretraining of each layer, fine-tuning, up-down) asks
:func:`progress_callbacks` for its callbacks with the estimator's ``verbose``:

- ``0``: nothing;
- ``1``: a :class:`~deepbelief.loop.ProgressBar` when standard error is a terminal, else an
  :class:`EpochLog` (one line per epoch);
- ``2`` or more: an :class:`EpochLog` even on a terminal.

In a distributed run only the process of rank 0 shows anything.

An epoch line reads (the metrics are the epoch's own: loss, monitors, validation scores)::

    pretrain layer 2/3 (500-2000): epoch 3/10 (1.27 s) loss=0.0712 reconstruction_error=0.0123
    fine-tune: epoch 12/50 (0.05 s) loss=0.4123 val_loss=0.4512 val_accuracy=0.8125
    up-down: epoch 2/5 (0.10 s) generative_error=0.0234
"""

from __future__ import annotations

import sys

from . import distributed
from .loop import Callback, ProgressBar

__all__ = ["EpochLog", "epoch_line", "pretrain_desc", "progress_callbacks", "stderr_is_terminal"]

#: Metrics an epoch line leaves out (the counters are shown apart; the rate is in the history).
HIDDEN = frozenset({"epoch", "seconds", "learning_rate"})


def stderr_is_terminal() -> bool:
    """Whether standard error (as it is now: redirections and test captures count) is a
    terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream
        return False


def progress_callbacks(desc: str, verbose) -> list:
    """The progress callbacks of one phase named ``desc`` (see the module's docstring)."""
    verbose = int(verbose or 0)
    if verbose <= 0 or not distributed.is_main():
        return []
    if verbose == 1 and stderr_is_terminal():
        return [ProgressBar(desc=desc)]
    return [EpochLog(desc)]


def pretrain_desc(dbn, i: int) -> str:
    """``"pretrain layer 2/3 (500-2000)"``: the name of the pretraining of RBM ``i`` of ``dbn``
    (its visible and hidden sizes; the top RBM of a DBN with label units says how many)."""
    rbm, n = dbn.rbms[i], len(dbn.rbms)
    labels = int(getattr(dbn, "n_labels", 0) or 0) if i == n - 1 else 0
    sizes = f"{rbm.n_visible - labels}-{rbm.n_hidden}"
    if labels:
        sizes += f", {labels} label units"
    return f"pretrain layer {i + 1}/{n} ({sizes})"


def epoch_line(desc: str, metrics: dict, epochs: int | None = None) -> str:
    """One epoch's line: ``"{desc}: epoch {i}/{n} ({seconds} s) name=value ..."`` with every
    numeric metric but the counters and the learning rate, in the order the loop recorded
    them (the loss, the monitors, then the validation scores)."""
    epoch = metrics.get("epoch", "?")
    counter = f"epoch {epoch}" if epochs is None else f"epoch {epoch}/{epochs}"
    parts = [f"{desc}: {counter}"]
    seconds = metrics.get("seconds")
    if isinstance(seconds, (int, float)):
        parts.append(f"({seconds:.2f} s)")
    for name, value in metrics.items():
        if name in HIDDEN or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        parts.append(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


class EpochLog(Callback):
    """One line per epoch on standard error (flushed at once, so a log file or a pipe shows it
    as it happens): see :func:`epoch_line`. Also a line when a run resumes part-way and when a
    callback (early stopping) ends it before its last epoch.

    Parameters
    ----------
    desc : str
        The phase: ``"fine-tune"``, ``"pretrain layer 1/2 (784-500)"``...
    stream : file, optional
        Where to write; default: ``sys.stderr`` as it is at each write.
    """

    def __init__(self, desc: str = "training", stream=None):
        self.desc, self.stream = desc, stream

    def _write(self, line: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        print(line, file=stream, flush=True)

    def on_train_begin(self, loop) -> None:
        if loop.epoch or loop.batch:
            batch = f", batch {loop.batch}" if loop.batch else ""
            self._write(f"{self.desc}: resuming after epoch {loop.epoch}/{loop.epochs}{batch}")

    def on_epoch_end(self, loop, metrics: dict) -> None:
        self._write(epoch_line(self.desc, metrics, loop.epochs))

    def on_train_end(self, loop) -> None:
        if loop.stop_training and loop.epoch < loop.epochs:
            kept = ""
            if getattr(loop, "best_weights", None) is not None:  # fine-tuning's early stopping
                kept = f" (ends with the weights of epoch {loop.best_epoch})"
            self._write(f"{self.desc}: stopped early after epoch {loop.epoch}/{loop.epochs}{kept}")
