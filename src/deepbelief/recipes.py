"""Training recipes: the settings the supervised DBN estimators choose from the data's size,
named presets of published setups, and time budgets.

A parameter left at ``"auto"`` takes, in this order, the value of the named ``preset`` (when
it sets that parameter), else the value :func:`size_settings` derives from the number of
training rows. Explicit values always win. The estimators keep the values they used in their
fitted ``settings_`` attribute.
"""

from __future__ import annotations

import math
import time

from .loop import Callback

AUTO = "auto"

#: Rows from which a dataset counts as large: no early stopping (the validation split would
#: cost more than it tells), larger batches, a learning rate decaying to zero.
LARGE = 20_000

#: Rows from which a validation split for early stopping leaves enough on both sides.
SPLITTABLE = 100

#: Share of a time budget given to greedy pretraining (the MNIST recipe spends 14 % there).
PRETRAIN_SHARE = 0.15

#: Named presets: published MNIST setups, reproduced through the estimators' parameters.
PRESETS: dict[str, dict] = {
    # Hinton & Salakhutdinov (2006): 784-500-500-2000, 50 epochs of CD-1 per layer in batches
    # of 100, then backprop fine-tuning of the whole network (1.2 % test error on MNIST).
    "hinton2006": dict(
        hidden_layers=(500, 500, 2000),
        pretrain_epochs=50,
        pretrain_batch_size=100,
        epochs=200,
        batch_size=100,
        optimizer="sgd",
        learning_rate=0.1,
        dropout=0.0,
        input_dropout=0.0,
        lr_schedule="linear",
        early_stopping=False,
        mixed_precision="auto",
    ),
    # The same network fine-tuned with dropout, as Srivastava et al. (2014) did (0.92 % after a
    # long run): our 30-minute version on 2 CPU cores (0.96 % in benchmarks/RESULTS.md).
    # Pretraining 50/50/30 epochs, then SGD at 0.25 in batches of 250 decaying linearly to
    # zero over as many epochs as the time budget leaves (at most 850).
    "srivastava2014": dict(
        hidden_layers=(500, 500, 2000),
        pretrain_epochs=(50, 50, 30),
        pretrain_batch_size=100,
        epochs=850,
        batch_size=250,
        optimizer="sgd",
        learning_rate=0.25,
        dropout=0.5,
        input_dropout=0.2,
        lr_schedule="linear",
        early_stopping=False,
        mixed_precision="auto",
        time_budget=1780.0,
    ),
    # The convolutional DBN of Lee, Grosse, Ranganath & Ng (2009) (0.82 % on MNIST): two conv
    # RBMs with probabilistic max-pooling, 24 then 40 filters of 5x5 pooled over 2x2 blocks;
    # our 30-minute version on 2 CPU cores adds a dense layer of 200 and fine-tunes the
    # unfolded CNN with dropout on it, the rate decaying linearly to zero over the epochs the
    # time budget leaves (benchmarks/mnist_conv.py).
    "lee2009": dict(
        conv_layers=[(24, 5, 2), (40, 5, 2)],
        hidden_layers=(200,),
        pretrain_epochs=(2, 2, 10),
        pretrain_batch_size=50,
        epochs=100,
        batch_size=50,
        optimizer="sgd",
        learning_rate=0.1,
        dropout=0.5,
        input_dropout=0.0,
        lr_schedule="linear",
        early_stopping=False,
        mixed_precision="auto",
        time_budget=1780.0,
    ),
}


#: Generative label models, ``DBN(**GENERATIVE_PRESETS[name]).fit(X, y)``.
GENERATIVE_PRESETS: dict[str, dict] = {
    # Hinton, Osindero & Teh (2006): 784-500-500-2000 with the label units on the top RBM
    # (1.25 % test error after a week of up-down fine-tuning); our 2-core budget version:
    # greedy CD-1 pretraining, the label RBM's hybrid training, then the DBN's default 5
    # epochs of up-down with the top kept hybrid (1.75 % and 96.3 % of the class-conditional
    # samples recognised in 21 minutes of one thread, benchmarks/RESULTS.md).
    "hinton2006": dict(
        hidden_layers=(500, 500, 2000),
        pretrain_epochs=(20, 20, 20),
        pretrain_batch_size=100,
        # the top (label) RBM by PCD: CD leaves spurious modes that class-conditional chains
        # fall into (a faint blob for every class, benchmarks/RESULTS.md)
        layer_params=[{}, {}, {"sampler": "pcd", "learning_rate": 0.02}],
        label_training="hybrid",
        label_epochs=40,
        # then backprop of the recognition path alone (the generative model stays as it is),
        # the images shifted by up to a pixel, for the time the earlier phases leave
        finetune_epochs=60,
        finetune_learning_rate=0.15,
        finetune_dropout=0.2,
        finetune_input_dropout=0.0,
        finetune_shift=1,
        time_budget=3300.0,
    ),
}


def check_preset(preset) -> None:
    """Refuse an unknown preset name (ValueError listing the known ones)."""
    if preset is not None and (not isinstance(preset, str) or preset not in PRESETS):
        known = ", ".join(sorted(PRESETS))
        raise ValueError(f"preset must be None or one of {known}; got {preset!r}")


def size_settings(task: str, n_rows: int) -> dict:
    """The settings for ``n_rows`` training rows of a ``task`` problem.

    Small tables need many passes over few rows; large datasets few passes, larger batches
    and a decaying rate. Below :data:`LARGE` rows, fine-tuning stops early on a validation split
    and is then refitted on all rows (see the estimators' ``early_stopping``).

    Parameters
    ----------
    task : {"classification", "regression"}
    n_rows : int

    Returns
    -------
    dict
        A value for every parameter that may be ``"auto"``.
    """
    n = max(int(n_rows), 1)
    large = n >= LARGE
    regression = task == "regression"
    epochs = min(300, math.ceil(30_000 / n) + 50)
    return dict(
        hidden_layers=(256, 256),
        pretrain_epochs=min(50, math.ceil(10_000 / n) + 10),
        pretrain_batch_size=100 if large else 20,
        epochs=epochs,
        batch_size=50 if large else 32,
        optimizer="adam" if regression else "sgd",
        learning_rate=auto_learning_rate(task, "adam" if regression else "sgd"),
        dropout=0.3 if regression else 0.2,
        input_dropout=0.0,
        lr_schedule="linear" if large else "constant",
        early_stopping=SPLITTABLE <= n < LARGE,
        validation_fraction=0.2 if n < 1000 else 0.1,
        n_iter_no_change=max(20, epochs // 2),
        mixed_precision=False,
        time_budget=None,
    )


def auto_learning_rate(task: str, optimizer: str, hidden=None) -> float:
    """The fine-tuning rate of ``optimizer`` when the learning rate is "auto": SGD at 0.1
    for classification (0.01 through Gaussian hidden layers, which are linear and diverged
    at 0.1) and Adam at 0.01 for regression, the task's own optimizers; otherwise SGD's
    usual 0.1 and Adam's 0.001 (a classifier's Adam ran at SGD's 0.1)."""
    if task == "classification" and optimizer == "sgd":
        return 0.01 if _linear_hidden(hidden) else 0.1
    if task == "regression" and optimizer == "adam":
        return 0.01
    return {"sgd": 0.1, "adam": 0.001}[optimizer]


def _linear_hidden(hidden) -> bool:
    """Whether ``hidden`` (a unit type or Units, or a list of them, one per layer) names
    Gaussian (linear) units."""
    kinds = hidden if isinstance(hidden, (list, tuple)) else [hidden]
    return any(getattr(kind, "name", kind) == "gaussian" for kind in kinds)


def resolve(params: dict, task: str, n_rows: int) -> dict:
    """The value of every ``"auto"`` entry of ``params``: the preset's, else the size rule's.

    Parameters
    ----------
    params : dict
        The estimator's parameters (``get_params(deep=False)``), ``preset`` included.
    task : {"classification", "regression"}
    n_rows : int

    Returns
    -------
    dict
        ``params`` with every ``"auto"`` replaced (``time_budget``: None when not set).
    """
    check_preset(params.get("preset"))
    preset = PRESETS.get(params.get("preset"), {})
    defaults = {**size_settings(task, n_rows), **preset}
    out = dict(params)
    if out.get("average_epochs") and _is_auto(out.get("early_stopping")):
        defaults["early_stopping"] = False  # a weight average asked for: no early stopping
    for name, value in defaults.items():
        if name in out and _is_auto(out[name]):
            out[name] = value
    if _is_auto(params.get("learning_rate")) and "learning_rate" not in preset:
        out["learning_rate"] = auto_learning_rate(task, out["optimizer"], params.get("hidden"))
    if _is_auto(params.get("n_iter_no_change")) and "n_iter_no_change" not in preset:
        out["n_iter_no_change"] = max(20, out["epochs"] // 2)  # of the epochs run, given or not
    for name in ("time_budget", "conv_layers"):  # None unless given: the preset's
        if out.get(name) is None and name in defaults and name in out:
            out[name] = defaults[name]
    return out


def _is_auto(value) -> bool:
    return isinstance(value, str) and value == AUTO


# ---------------------------------------------------------------------- time budgets
class Deadline:
    """Seconds left of a time budget started at construction, ``spent`` seconds of it already
    gone (a run resumed from its checkpoint); None: no budget."""

    def __init__(self, seconds: float | None, spent: float = 0.0):
        self.seconds = seconds
        self.start = time.perf_counter() - float(spent)

    def spent(self) -> float:
        """Seconds since the run began (those before a resume included)."""
        return time.perf_counter() - self.start

    def left(self) -> float | None:
        """Seconds left (may be negative), or None without a budget."""
        if self.seconds is None:
            return None
        return self.seconds - (time.perf_counter() - self.start)


class TimeBudget(Callback):
    """Re-plans a fit loop's epochs so that it ends within ``seconds``: after every epoch,
    until ``replan_until`` of the planned run is done, the planned number of epochs becomes
    what the measured seconds per epoch fit into the budget, between ``min_epochs`` and
    ``max_epochs``. The learning-rate schedule follows the new plan from the next update.

    A run under a time budget depends on the machine's speed: it is not reproducible from its
    seed alone (the epochs it planned are in its history).
    """

    def __init__(self, seconds: float, max_epochs: int, min_epochs: int = 1, replan_until=0.7):
        self.seconds, self.max_epochs = float(seconds), int(max_epochs)
        self.min_epochs, self.replan_until = int(min_epochs), float(replan_until)
        self.start, self.first_epoch = 0.0, 0

    def on_train_begin(self, loop):
        self.start, self.first_epoch = time.perf_counter(), loop.epoch
        loop.epochs = max(min(loop.epochs, self.max_epochs), loop.epoch + 1)

    def on_epoch_end(self, loop, metrics):
        if loop.epoch >= self.replan_until * loop.epochs:
            return
        done = loop.epoch - self.first_epoch
        per_epoch = (time.perf_counter() - self.start) / max(done, 1)
        fits = loop.epoch + int((self.seconds - (time.perf_counter() - self.start)) / per_epoch)
        loop.epochs = max(self.min_epochs, loop.epoch, min(self.max_epochs, fits))
        metrics["planned_epochs"] = loop.epochs
