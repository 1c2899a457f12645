"""Supervised backprop fine-tuning of a feed-forward network (an unfolded DBN).

The network's Parameters are trained in place: an unfolded DBN shares its Linear weights with
the pretrained RBMs (some through a transpose parametrization), so nothing here copies or
re-creates a Parameter. Restoring earlier values (early stopping, the divergence guard) copies
them back into the same Parameter objects. Epochs, batches, schedules, callbacks, the
divergence guard and exact interruption are the shared fit loop's (:mod:`deepbelief.loop`);
this module supplies the backprop step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from . import distributed
from .label_training import LabelTraining
from .loop import FitLoop, learning_rate_at, make_generator
from .nn.layers import Dropout
from .optim import SGD
from .progress import progress_callbacks
from .settings import LR_SCHEDULES, OPTIMIZERS, TASKS, FinetuneSettings, LoopSettings

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "TASKS",
    "FinetuneResult",
    "apply_max_norm",
    "evaluate",
    "finetune",
    "learning_rate_at",
    "UpDown",
    "up_down",
]


class FinetuneResult(FitLoop):
    """The state of a fine-tuning run, passed to callbacks and returned by :func:`finetune`.

    Attributes
    ----------
    network : torch.nn.Module
        The network being trained (the object given to :func:`finetune`).
    optimizer : deepbelief.optim.SGD or torch.optim.Adam
    history : list of dict
        One dict per epoch: ``epoch``, ``loss`` (mean training loss over the batches),
        ``learning_rate`` (of the epoch's last update), ``seconds`` and, with validation data,
        ``val_loss`` and ``val_accuracy`` (classification) or ``val_r2`` (regression).
    best_epoch : int or None
        The epoch with the lowest validation loss (None without validation data).
    epochs, epoch, step, batch, batches_per_epoch : int
        Planned epochs, epochs completed, updates completed, updates completed in the current
        epoch, updates per epoch.
    stop_training : bool
        A callback sets it to True to stop after the current epoch.
    generator : torch.Generator or None
        The generator of the shuffling and the dropout masks.
    best_loss : float
        The lowest validation loss so far (inf before the first).
    best_weights : dict or None
        With early stopping, a copy of the network's state at ``best_epoch``.
    epochs_without_improvement : int
        Epochs since ``best_epoch``.
    averaged : dict or None
        With ``average_epochs``, the running mean of the network's state over the epochs
        averaged so far (None before the first).
    n_averaged : int
        Epochs in ``averaged``.
    """

    what = "fine-tuning"

    def __init__(self, network, optimizer, settings: FinetuneSettings, generator=None, **kw):
        self.network, self.optimizer, self.settings = network, optimizer, settings
        self._init_loop(settings.epochs, settings.batch_size, settings.learning_rate, generator, ())
        self.lr_schedule = settings.lr_schedule
        self.best_epoch: int | None = None
        self.best_loss = float("inf")
        self.best_weights: dict | None = None
        self.epochs_without_improvement = 0
        self.averaged: dict | None = None
        self.n_averaged = 0
        self.X, self.y = kw.get("X"), kw.get("y")
        self.validation = kw.get("validation")
        self.head, self.frozen = kw.get("head", network), list(kw.get("frozen", ()))

    # ---------------------------------------------------------------- the rule
    def _begin_epoch(self) -> None:
        in_head_phase = self.epoch < self.settings.head_epochs
        for p in self.frozen:
            p.requires_grad_(not in_head_phase)
        trained = self.head if in_head_phase else self.network
        self._linears = [m for m in trained.modules() if isinstance(m, nn.Linear)]
        self.network.train()

    def _update(self, rows: torch.Tensor, learning_rate: float) -> torch.Tensor:
        s, optimizer, X = self.settings, self.optimizer, self.X
        for group in optimizer.param_groups:
            group["lr"] = learning_rate
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(X.device.type, torch.bfloat16, enabled=s.mixed_precision):
            out = self.network(X.index_select(0, rows))  # whole rows: faster than X[rows]
        loss = _loss(out.to(X.dtype), self.y[rows], s.task)
        loss.backward()
        # the loss stays on its device (read every check_every updates: no synchronisation
        # per update on a GPU); a non-finite one sends the loop back to its last good state
        value = self._average_gradients(loss.detach())
        optimizer.step()
        if s.max_norm is not None:
            apply_max_norm(self._linears, s.max_norm)
        return value

    def _end_epoch(self, metrics: dict) -> None:
        s = self.settings
        if self.epoch > self.epochs - s.average_epochs:
            _update_average(self)
            if self.epoch == self.epochs:
                _restore(self.network, self.averaged)
        if self.validation is not None:
            metrics.update(evaluate(self.network, *self.validation, s.task))
            # every process of a distributed run decides alike (its CPU may round otherwise)
            distributed.average_metrics(metrics)
            _track_best(self, metrics["val_loss"], s.early_stopping)

    def _parameters(self):
        return self.network.parameters()

    def _rule_state(self) -> dict:
        return {
            "network": dict(self.network.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "best_epoch": self.best_epoch,
            "best_loss": self.best_loss,
            "best_weights": self.best_weights,
            "epochs_without_improvement": self.epochs_without_improvement,
            "averaged": self.averaged,
            "n_averaged": self.n_averaged,
        }

    def _load_rule_state(self, state: dict) -> None:
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.best_epoch = state["best_epoch"]
        self.best_loss = float(state["best_loss"])
        self.best_weights = _on_device(state["best_weights"], self.network)
        self.epochs_without_improvement = int(state["epochs_without_improvement"])
        self.averaged = _on_device(state.get("averaged"), self.network)
        self.n_averaged = int(state.get("n_averaged", 0))

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Everything needed to continue the run exactly after its last completed update
        (``finetune(..., resume=state)``): the fit loop's
        :meth:`~deepbelief.loop.FitLoop.loop_state`, whose ``"rule"`` holds ``network`` (its
        ``state_dict``, head included), ``optimizer``, ``best_epoch``, ``best_loss``,
        ``best_weights``, ``epochs_without_improvement``, ``averaged`` and ``n_averaged``.

        Like ``torch.nn.Module.state_dict``, the tensors are the live ones; clone them
        (:func:`deepbelief.loop.clone_state`) to keep a snapshot.
        """
        return self.loop_state()

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (also one of an earlier version, which kept epoch ends
        only): the network's values are copied into its own Parameters (shared ones stay
        shared), then the optimizer, generator and counters."""
        if "rule" not in state:
            state = {**state, "rule": state}
        self.load_loop_state(state)


def finetune(
    network: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    task: str,
    *,
    epochs: int = 50,
    batch_size: int = 100,
    optimizer: str = "sgd",
    learning_rate: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    max_norm: float | None = None,
    lr_schedule: str = "constant",
    head_epochs: int = 0,
    head: nn.Module | None = None,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    early_stopping: int | None = None,
    average_epochs: int = 0,
    mixed_precision: bool = False,
    generator: torch.Generator | None = None,
    callbacks: Sequence = (),
    progress: bool | int = False,
    resume: dict | None = None,
) -> FinetuneResult:
    """Train ``network`` by minibatch backprop on ``(X, y)``, in place.

    Parameters
    ----------
    network : torch.nn.Module
        Maps ``(n, n_features)`` to logits ``(n, n_classes)`` (classification) or predictions
        ``(n, n_targets)`` (regression). Its Parameters are updated in place, never replaced.
    X : tensor of shape (n_samples, n_features)
        Inputs, on the network's device.
    y : tensor
        Class indices (int64, shape ``(n_samples,)``) or float targets of shape
        ``(n_samples, n_targets)`` (a 1-D target is taken as one column).
    task : {"classification", "regression"}
        Cross-entropy on logits, or mean squared error.
    epochs, batch_size : int
    optimizer : {"sgd", "adam"}
        SGD with (non-Nesterov) ``momentum``, or Adam.
    learning_rate : float
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 penalty on the weight matrices (parameters with ``ndim >= 2``), not the biases.
    max_norm : float, optional
        After every update, caps the L2 norm of each output unit's incoming weight vector
        (each row of every ``nn.Linear`` weight). A parametrized weight must be the transpose
        of its stored ``original`` (the unfolded DBN's layout); its columns are scaled.
    lr_schedule : {"constant", "linear", "cosine"}
        Per-update schedule over the whole run; "linear" and "cosine" end at zero.
    head_epochs : int
        For the first ``head_epochs`` epochs only ``head`` is trained, then everything.
    head : torch.nn.Module, optional
        The output layer (default: the last child module of ``network`` with parameters).
    validation : (tensor, tensor), optional
        Held-out ``(X, y)`` scored after every epoch.
    early_stopping : int, optional
        Patience in epochs on the validation loss. When set, training stops after that many
        epochs without improvement, and at the end the parameters of the best epoch are
        copied back in place.
    average_epochs : int
        Stochastic weight averaging (Izmailov et al. 2018): the network's parameters are
        averaged, with equal weights, over the states after each of the last
        ``average_epochs`` epochs, and the network ends with that average (copied in place
        before the last epoch's validation and callbacks). 0: the last epoch's state. Not
        with ``early_stopping``.
    mixed_precision : bool
        Run the forward and backward passes under ``torch.autocast`` in bfloat16 (the
        Parameters, the optimizer and the loss stay in their own dtype). Several times faster
        matrix products on GPUs and on CPUs with native bfloat16 (AVX512-BF16, AMX); slower
        elsewhere.
    generator : torch.Generator, optional
        All randomness: the shuffling and the masks of every
        :class:`deepbelief.nn.layers.Dropout` in ``network``. Default: a freshly seeded one.
    callbacks : sequence
        Objects with any of ``on_train_begin(state)``, ``on_batch_end(state, batch,
        n_batches)``, ``on_epoch_end(state, metrics)``, ``on_train_end(state)``; ``state`` is
        the :class:`FinetuneResult`; setting ``state.stop_training = True`` stops the run.
    progress : bool or int
        True or 1: a tqdm bar over the batches when standard error is a terminal, else one
        line per epoch on standard error; 2: the lines even on a terminal
        (:func:`deepbelief.progress.progress_callbacks`).
    resume : dict, optional
        :meth:`FinetuneResult.state_dict` of an interrupted run with the same settings and
        data: training continues after its last completed update, also in the middle of an
        epoch (network, optimizer, generator, counters, history and early-stopping state
        restored) and ends exactly as the
        uninterrupted run would have.

    Returns
    -------
    FinetuneResult

    Raises
    ------
    ValueError
        For a bad setting.
    deepbelief.errors.DivergenceError
        When the loss becomes NaN or inf; the network, optimizer, generator and counters keep
        the values they had at the start of that epoch (or of the resume point).
    """
    settings = FinetuneSettings(
        task=task, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
        learning_rate=learning_rate, momentum=momentum, weight_decay=weight_decay,
        max_norm=max_norm, lr_schedule=lr_schedule, head_epochs=head_epochs,
        early_stopping=early_stopping, average_epochs=average_epochs,
        mixed_precision=mixed_precision,
    )  # fmt: skip
    if settings.early_stopping is not None and validation is None:
        raise ValueError("early_stopping needs validation data")
    X, y = _check_data(X, y, task, "X", "y")
    if validation is not None:
        validation = _check_data(*validation, task, "validation X", "validation y")
    params = [p for p in network.parameters() if p.requires_grad]
    head = _resolve_head(network, head, params) if settings.head_epochs > 0 else network
    head_ids = {id(p) for p in head.parameters()}
    if generator is None:
        generator = make_generator(None, X.device)
    optimizer = _make_optimizer(params, optimizer, learning_rate, momentum, weight_decay)
    state = FinetuneResult(
        network,
        optimizer,
        settings,
        generator,
        X=X,
        y=y,
        validation=validation,
        head=head,
        frozen=[p for p in params if id(p) not in head_ids],  # during the head-only epochs
    )
    if resume is not None:
        state.load_state_dict(resume)
    state.callbacks = list(callbacks) + progress_callbacks("fine-tune", progress)
    try:
        with _dropout_generator(network, generator):
            state.run_loop(len(X))
        if state.best_weights is not None:
            _restore(network, state.best_weights)
        if state.averaged is not None:  # also when a callback stopped the run early
            _restore(network, state.averaged)
    finally:
        for p in state.frozen:
            p.requires_grad_(True)
        network.eval()
        state.X = state.y = state.validation = None
    return state


@torch.no_grad()
def evaluate(
    network: nn.Module, X: torch.Tensor, y: torch.Tensor, task: str, batch_size: int = 4096
) -> dict:
    """Score ``network`` (in eval mode) on ``(X, y)``.

    Parameters
    ----------
    network : torch.nn.Module
    X, y : tensor
        As for :func:`finetune`.
    task : {"classification", "regression"}
    batch_size : int
        Rows per forward pass.

    Returns
    -------
    dict
        ``val_loss`` and ``val_accuracy`` (classification) or ``val_r2`` (regression: the
        coefficient of determination averaged over the targets, like scikit-learn's).
    """
    X, y = _check_data(X, y, task, "X", "y")
    was_training = network.training
    network.eval()
    try:
        out = torch.cat([network(rows) for rows in torch.split(X, batch_size)])
    finally:
        network.train(was_training)
    metrics = {"val_loss": float(_loss(out, y, task))}
    if task == "classification":
        metrics["val_accuracy"] = float((out.argmax(1) == y).double().mean())
    else:
        residual = ((y - out) ** 2).sum(0).double()
        total = ((y - y.mean(0)) ** 2).sum(0).double()
        metrics["val_r2"] = float((1 - residual / total).mean())
    return metrics


def _loss(out: torch.Tensor, y: torch.Tensor, task: str) -> torch.Tensor:
    if task == "classification":
        return F.cross_entropy(out, y)
    if out.shape != y.shape:
        raise ValueError(
            f"the network's output has shape {tuple(out.shape)} but the targets have shape "
            f"{tuple(y.shape)}"
        )
    return F.mse_loss(out, y)


# ---------------------------------------------------------------------- parameters
@torch.no_grad()
def apply_max_norm(linears: Sequence[nn.Linear], max_norm: float) -> None:
    """Scale each row of every ``nn.Linear`` weight down to an L2 norm of at most ``max_norm``.

    The scaling is applied in place to the stored Parameter: the rows of ``weight``, or for a
    weight parametrized as the transpose of ``parametrizations.weight.original`` (shape
    ``(in, out)``), the columns of ``original``.

    Parameters
    ----------
    linears : sequence of torch.nn.Linear
    max_norm : float
    """
    for m in linears:
        if parametrize.is_parametrized(m, "weight"):
            original = m.parametrizations.weight.original
            shape = m.weight.shape
            if original.shape != shape[::-1]:
                raise ValueError(
                    "max_norm supports a parametrized Linear weight only when it is the "
                    f"transpose of its original; got weight {tuple(shape)}, original "
                    f"{tuple(original.shape)}"
                )
            original.mul_(_shrink_factors(original.square().sum(0), max_norm))
        else:
            m.weight.mul_(_shrink_factors(m.weight.square().sum(1), max_norm)[:, None])


def _shrink_factors(squared_norms: torch.Tensor, max_norm: float) -> torch.Tensor:
    # squares summed directly: several times faster than Tensor.norm along a dimension on CPU
    return torch.clamp(max_norm / (squared_norms.sqrt() + 1e-12), max=1.0)


def _make_optimizer(params, name, learning_rate, momentum, weight_decay):
    """SGD or Adam with the weight decay on the weight matrices only."""
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if name == "adam":
        return torch.optim.Adam(groups, lr=learning_rate)
    return SGD(groups, lr=learning_rate, momentum=momentum)  # torch.optim.SGD's arithmetic


def _resolve_head(network, head, params) -> nn.Module:
    """``head``, or the last child of ``network`` with parameters; checks it is trainable."""
    if head is None:
        children = [m for m in network.children() if any(True for _ in m.parameters())]
        if not children:
            raise ValueError("head_epochs needs a head: the network has no layer with parameters")
        head = children[-1]
    ids = {id(p) for p in params}
    head_params = [p for p in head.parameters() if p.requires_grad]
    if not head_params or any(id(p) not in ids for p in head_params):
        raise ValueError("head must be a module of the network with trainable parameters")
    return head


@contextlib.contextmanager
def _dropout_generator(network, generator):
    """Point every :class:`Dropout` in ``network`` at ``generator`` for the duration."""
    layers = [m for m in network.modules() if isinstance(m, Dropout)]
    previous = [m.generator for m in layers]
    for m in layers:
        m.generator = generator
    try:
        yield
    finally:
        for m, g in zip(layers, previous):
            m.generator = g


def _on_device(weights: dict | None, network: nn.Module) -> dict | None:
    """Saved weights (read onto the CPU) on the device of ``network``'s parameters."""
    if weights is None:
        return None
    device = next(network.parameters()).device
    return {name: tensor.to(device) for name, tensor in weights.items()}


def _snapshot(network: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in network.state_dict(keep_vars=True).items()}


@torch.no_grad()
def _restore(network: nn.Module, snapshot: dict) -> None:
    """Copy ``snapshot`` back into the network's own tensors (the same Parameter objects)."""
    for k, v in network.state_dict(keep_vars=True).items():
        v.copy_(snapshot[k])


@torch.no_grad()
def _update_average(state: FinetuneResult) -> None:
    """Fold the network's current state into ``state.averaged``, an equal-weight running
    mean over the epochs averaged so far."""
    if state.averaged is None:
        state.averaged, state.n_averaged = _snapshot(state.network), 1
        return
    state.n_averaged += 1
    current = state.network.state_dict()
    for key, mean in state.averaged.items():
        if mean.is_floating_point():
            mean.lerp_(current[key], 1.0 / state.n_averaged)


def _track_best(state: FinetuneResult, val_loss: float, patience: int | None) -> None:
    """Note the epoch with the lowest validation loss (and, for early stopping, its values);
    stop after ``patience`` epochs without a lower one."""
    if val_loss < state.best_loss:
        state.best_loss, state.best_epoch = val_loss, state.epoch
        state.epochs_without_improvement = 0
        if patience is not None:
            state.best_weights = _snapshot(state.network)
        return
    state.epochs_without_improvement += 1
    if patience is not None and state.epochs_without_improvement >= patience:
        state.stop_training = True


# ---------------------------------------------------------------------- checks
def _check_data(X, y, task, x_name, y_name):
    if X.ndim != 2:
        raise ValueError(
            f"{x_name} must be 2-D (n_samples, n_features), got shape {tuple(X.shape)}"
        )
    if len(X) == 0:
        raise ValueError(f"{x_name} has no rows")
    if len(X) != len(y):
        raise ValueError(f"{x_name} has {len(X)} rows but {y_name} has {len(y)}")
    if task == "classification":
        if y.is_floating_point() or y.ndim != 1:
            raise ValueError(f"{y_name} must be 1-D integer class indices for classification")
        return X, y.long()
    return X, (y.reshape(-1, 1) if y.ndim == 1 else y).to(X.dtype)


class UpDown(FitLoop):
    """Up-down fine-tuning as a fit loop (see :func:`up_down`); ``run()`` trains.

    The loop's ``loss`` of an update is the generative error of its batch; each epoch's
    metrics hold its mean as ``generative_error``.

    ``label_objective`` ("discriminative" or "hybrid", for a DBN with label units) trains the
    top RBM as :class:`~deepbelief.label_training.LabelTraining` does instead of by CD-k, on
    the up pass's mean features (SGD with momentum at ``learning_rate``; the hybrid's
    persistent chains also give the sleep phase its top states), so up-down keeps the label
    model discriminative while the layers below learn their generative and recognition
    weights.
    """

    what = "up-down fine-tuning"

    def __init__(
        self, dbn, X, labels=None, *, epochs=10, batch_size=100, learning_rate=0.01, k=3,
        generator=None, callbacks=(), label_objective=None, generative_weight=0.01,
    ):  # fmt: skip
        if dbn.n_labels and labels is None:
            raise ValueError("this DBN has label units: pass the labels")
        if label_objective is not None and not dbn.n_labels:
            raise ValueError("label_objective needs a DBN with label units")
        if any(r.visible.has_logvar or r.hidden.has_logvar for r in dbn.rbms):
            raise TypeError("up-down is implemented for units without learned variances")
        settings = LoopSettings(epochs, batch_size, learning_rate, "constant")
        if int(k) < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        generator = generator if generator is not None else make_generator(None, X.device)
        self._init_loop(settings.epochs, settings.batch_size, settings.learning_rate, generator,
                        callbacks)  # fmt: skip
        self.dbn, self.X, self.labels, self.k = dbn, X, labels, int(k)
        self.label_rule = None
        if label_objective is not None:
            self.label_rule = LabelTraining(
                dbn, X[:0], labels, objective=label_objective,
                generative_weight=generative_weight, epochs=1, batch_size=batch_size,
                learning_rate=learning_rate, generator=generator,
            )  # fmt: skip
        dbn.untie()

    def run(self) -> UpDown:
        """Train until ``epochs`` epochs are complete (continuing a resumed run)."""
        with torch.no_grad():
            self.run_loop(len(self.X))
        return self

    def _update(self, rows: torch.Tensor, learning_rate: float) -> torch.Tensor:
        labels = None if self.labels is None else self.labels[rows]
        error = _up_down_step(self.dbn, self.X[rows], labels, learning_rate, self.k, self.generator,
                              self.label_rule)  # fmt: skip
        if self._world > 1:  # plain SGD steps from equal parameters: their mean is the step of
            # the averaged gradients (with the error's mean, in the same all-reduce)
            mean_error = error.reshape(1).to(torch.float64)
            self._votes.append(
                distributed.average_([*self.dbn.parameters(), mean_error], self.interrupted)
            )
            error = mean_error.reshape(())
        return error  # on its device: the loop reads the errors in bulk

    def _end_epoch(self, metrics: dict) -> None:
        metrics["generative_error"] = metrics.pop("loss")

    def _parameters(self):
        return self.dbn.parameters()

    def _rule_state(self) -> dict:
        state = {"dbn": dict(self.dbn.state_dict())}
        if self.label_rule is not None:
            state["labels"] = self.label_rule._rule_state()
        return state

    def _load_rule_state(self, state: dict) -> None:
        self.dbn.load_state_dict(state["dbn"])
        if self.label_rule is not None and "labels" in state:
            self.label_rule._load_rule_state(state["labels"])


def up_down(
    dbn,
    X: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    epochs: int = 10,
    batch_size: int = 100,
    learning_rate: float = 0.01,
    k: int = 3,
    generator: torch.Generator | None = None,
    history: Sequence[dict] = (),
    on_epoch_end=None,
) -> list[dict]:
    """Up-down fine-tuning (contrastive wake-sleep) of a whole generative DBN (Hinton,
    Osindero & Teh 2006, appendix B).

    The layers below the top are untied (:meth:`deepbelief.nn.DBN.untie`): a stochastic up
    pass with the recognition weights gives the wake states, on which the generative weights
    learn to predict each layer from the one above; the top RBM (with its label units, given
    ``labels``) learns by CD-``k`` from the wake states; a stochastic down pass from the top's
    negative sample gives the sleep states, on which the recognition weights learn to predict
    each layer from the one below.

    Parameters
    ----------
    dbn : deepbelief.nn.DBN
        Trained in place (untied first).
    X : tensor of shape (n_samples, n_visible)
    labels : int64 tensor of shape (n_samples,), optional
        Required when the DBN has label units.
    epochs, batch_size : int
    learning_rate : float
    k : int
        Gibbs steps of the top RBM's CD.
    generator : torch.Generator, optional
    history : sequence of dict, optional
        The history of an interrupted run: training continues after its last epoch. The DBN
        must hold that epoch's weights and ``generator`` that epoch's state.
    on_epoch_end : callable, optional
        ``on_epoch_end(history)`` after every epoch, with the history so far.

    Returns
    -------
    list of dict
        Per epoch (those of ``history`` first): ``epoch`` and ``generative_error``, the mean
        squared error of the data predicted top-down from the wake states of the first hidden
        layer.
    """
    loop = UpDown(
        dbn, X, labels, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, k=k,
        generator=generator, callbacks=[_EachEpoch(on_epoch_end)] if on_epoch_end else [],
    )  # fmt: skip
    if history:  # the DBN holds that epoch's weights and the generator that epoch's state
        batches = -(-len(X) // min(loop.batch_size, len(X)))
        loop.epoch, loop.step, loop.history = len(history), len(history) * batches, list(history)
    return loop.run().history


class _EachEpoch:
    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, loop, metrics):
        self.fn(loop.history)


@torch.no_grad()
def _up_down_step(dbn, data, labels, lr, k, generator, label_rule=None) -> torch.Tensor:
    lower, top = dbn.rbms[:-1], dbn.rbms[-1]
    n_features = top.n_visible - dbn.n_labels
    wake = [data]
    for rbm in lower:
        wake.append(rbm.sample_hidden(wake[-1], generator=generator))
    if label_rule is not None:  # the label model's own objective on the mean features
        means = data
        for rbm in lower:
            means = rbm.hidden_mean(means)
        with torch.enable_grad():
            label_rule.train_step(means, labels, lr, generator)
        top_negative = label_rule.chains
        if top_negative is None:  # discriminative alone: a Gibbs step from the data
            top_negative = top.gibbs(dbn.top_visible(means, labels), k, generator=generator)
    else:
        top_negative = _contrastive_top_step(dbn, wake[-1], labels, lr, k, generator)
    return _wake_sleep_step(dbn, wake, top_negative[:, :n_features], lr, generator)


def _contrastive_top_step(dbn, features, labels, lr, k, generator) -> torch.Tensor:
    """CD-``k`` of the top RBM from ``features`` (and labels); returns its negative
    particles."""
    top, n = dbn.rbms[-1], len(features)
    v_pos = dbn.top_visible(features, labels)
    x_pos = top.hidden_input(v_pos)
    h = top.hidden.sample(x_pos, generator=generator)
    for _ in range(k):
        v_neg = top.sample_visible(h, generator=generator)
        x_neg = top.hidden_input(v_neg)
        h = top.hidden.sample(x_neg, generator=generator)
    p_pos, p_neg = top.hidden.mean(x_pos), top.hidden.mean(x_neg)
    top.weight.add_(v_pos.t() @ p_pos - v_neg.t() @ p_neg, alpha=lr / n)
    top.hidden_bias.add_((p_pos - p_neg).mean(0), alpha=lr)
    top.visible_bias.add_((v_pos - v_neg).mean(0), alpha=lr)
    return v_neg


def _wake_sleep_step(dbn, wake, top_features, lr, generator) -> torch.Tensor:
    """The lower layers' step: generative weights from the wake states, recognition weights
    from the sleep states of a down pass from ``top_features``; returns the generative
    error of the data (a one-element tensor on the parameters' device)."""
    lower, n = dbn.rbms[:-1], len(wake[0])
    sleep = [top_features]
    for layer in reversed(range(len(lower))):
        sleep.insert(0, dbn.generative_sample(layer, sleep[0], generator))
    error = torch.zeros((), device=top_features.device)
    for layer, rbm in enumerate(lower):
        # generative weights predict each wake layer from the one above
        miss = wake[layer] - dbn.generative_mean(layer, wake[layer + 1])
        if layer == 0:
            error = (miss**2).mean()
        dbn.generative_weights[layer].add_(miss.t() @ wake[layer + 1], alpha=lr / n)
        dbn.generative_biases[layer].add_(miss.mean(0), alpha=lr)
        # recognition weights predict each sleep layer from the one below
        miss = sleep[layer + 1] - rbm.hidden_mean(sleep[layer])
        rbm.weight.add_(sleep[layer].t() @ miss, alpha=lr / n)
        rbm.hidden_bias.add_(miss.mean(0), alpha=lr)
    return error
