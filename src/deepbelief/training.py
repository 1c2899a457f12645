"""Training one RBM (contrastive divergence and its relatives) and greedy pretraining of a
stack.

Gradients come from autograd on the contrastive free-energy difference
``mean F(v_data) - mean F(v_model)``, whose gradient is the usual CD/PCD statistic
``<s_v s_h>_data - <s_v s_h>_model`` for every parameter of every unit type. The negative
particles come from a :mod:`deepbelief.samplers` sampler. Epochs, batches, schedules,
callbacks, the divergence guard and exact interruption are the shared fit loop's
(:mod:`deepbelief.loop`); this module supplies the RBM's update rule.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import tempfile
from collections.abc import Sequence

import torch

from . import distributed, errors, evaluation
from .errors import DataError, UndertrainedWarning
from .io import read_file, register
from .loop import (
    Callback,
    FitLoop,
    ProgressBar,
    clone_state,
    generator_state,
    loading_device,
    make_generator,
    resolve_device,
    set_generator_state,
)
from .nn.conv import layer_from_config
from .nn.dbn import DBN
from .nn.rbm import RBM
from .nn.units import BernoulliUnits, Units
from .optim import SGD, momentum_buffers
from .samplers import CD, PCD, Sampler, make_sampler, sampler_from_config
from .settings import LR_SCHEDULES, RBMSettings, SamplerSettings, check, integer
from .streams import blocked_permutation, is_row_file, propagate_to_file

__all__ = [
    "LR_SCHEDULES",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "History",
    "ProgressBar",
    "RBMTrainer",
    "clone_state",
    "fit_rbm",
    "make_generator",
    "native_bfloat16",
    "pretrain_dbn",
    "propagate",
    "resolve_device",
]

log = logging.getLogger("deepbelief")
#: Binary hidden units whose mean activation on the monitored rows is below this are
#: "switched off" (a warning at the end of training, a log line each epoch).
SWITCHED_OFF = 1e-3

#: The per-epoch monitors may cost about this fraction of the training time: by default they
#: run every few epochs when they would cost more at every one (``RBMTrainer.monitor_every``).
MONITOR_BUDGET = 0.03

#: Training rows gathered at once in the epoch's order (a block of whole minibatches, about
#: 8 MB of float32), so that each update reads a contiguous slice, not an index gather.
BLOCK_ELEMENTS = 1 << 21

# Rough costs for the monitors' interval (microseconds, one CPU thread, measured on the
# benchmark machine): a tensor operation's fixed cost, a multiply-add of a matrix product, an
# element of a transcendental function; the operations of an update and of the monitors.
_OP_COST, _MAC_COST, _ELEMENT_COST = 3.0, 5e-5, 1.5e-3
_UPDATE_OPS, _MONITOR_OPS = 18, 30


def native_bfloat16(device: str | torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices natively (CUDA with bfloat16 support, or
    a CPU with AVX512-BF16 or AMX through oneDNN): where ``mixed_precision`` pays off."""
    device = torch.device(device)
    if device.type == "cuda":  # compute capability 8.0 (Ampere) on; older cards emulate it
        return torch.cuda.get_device_capability(device) >= (8, 0)
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and _mkldnn_bf16_supported())
    return False


def _mkldnn_bf16_supported() -> bool:
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


class History(Callback):
    """Keeps every epoch's metrics in ``self.epochs`` (the trainer keeps its own copy too)."""

    def __init__(self):
        self.epochs: list[dict] = []

    def on_epoch_end(self, trainer, metrics):
        self.epochs.append(dict(metrics))


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    ``mode="max"`` for metrics that should rise (pseudo-log-likelihood), ``"min"`` otherwise.
    It asks the trainer for its monitors at every epoch (``needs_monitors``).
    """

    #: A callback with ``needs_monitors = True`` makes :class:`RBMTrainer` compute its
    #: monitors at every epoch, whatever its ``monitor_every``.
    needs_monitors = True

    def __init__(self, monitor="reconstruction_error", patience=5, min_delta=0.0, mode="min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.best, self.wait = None, 0

    def on_epoch_end(self, trainer, metrics):
        value = metrics.get(self.monitor)
        if value is None:
            return
        score = value if self.mode == "max" else -value
        if self.best is None or score > self.best + self.min_delta:
            self.best, self.wait = score, 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                log.info(
                    "early stopping at epoch %d: %s stopped improving", trainer.epoch, self.monitor
                )
                trainer.stop_training = True


class Checkpoint(Callback):
    """Write ``trainer``'s whole state (:meth:`RBMTrainer.save_checkpoint`) to ``path`` every
    ``every`` epochs and at the end.

    ``source`` may replace what the file holds: an object :func:`deepbelief.io.save` saves
    (an estimator saves itself instead). In a distributed run every process takes part and
    rank 0 writes (:func:`deepbelief.distributed.write_together`).
    """

    def __init__(self, path, every: int = 1, source=None):
        if int(every) < 1:
            raise ValueError(f"checkpoint interval must be >= 1 epoch, got {every}")
        self.path, self.every, self.source = path, int(every), source

    def _write(self, trainer):
        source = trainer if self.source is None else self.source
        distributed.write_together(
            self.path, type(source)._file_kind, source._to_state(), trainer.stopped_together
        )

    def on_epoch_end(self, trainer, metrics):
        if trainer.epoch % self.every == 0:
            self._write(trainer)

    def on_train_end(self, trainer):
        self._write(trainer)


def _dropped(hidden_input: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``hidden_input`` with -inf where ``mask`` is 0: those units' means and samples are 0."""
    return hidden_input.masked_fill(mask == 0, -math.inf)


@register("checkpoint")
class RBMTrainer(FitLoop):
    """Trains one :class:`deepbelief.nn.RBM` by contrastive divergence and its relatives.

    Defaults follow Hinton's *A Practical Guide to Training RBMs* (2010): learning rate 0.1,
    momentum 0.5 for the first 5 epochs then 0.9, weight decay 2e-4 on the weights only.
    With ``lr_schedule="auto"`` the learning rate is constant for CD and decays linearly to
    zero for PCD and PT (Tieleman 2008), which persistent chains need to settle.

    Parameters
    ----------
    model : deepbelief.nn.RBM
    sampler : {"cd", "pcd", "pt"} or Sampler, default "cd"
    k : int, default 1
        Gibbs steps per update (for a sampler given by name).
    n_chains : int, optional
        Persistent chains of PCD/PT (default: the batch size).
    n_temperatures : int, default 10
        Temperatures of PT (given by name).
    epochs, batch_size : int
    learning_rate : float
    lr_schedule : {"auto", "constant", "linear", "cosine"}
        Per-update schedule over the whole run; "linear" and "cosine" end at zero.
    momentum, final_momentum : float
        Momentum for the first ``momentum_epochs`` epochs, then ``final_momentum``.
    weight_decay : float
        L2 penalty on the weights (not the biases).
    l1 : float
        L1 penalty on the weights.
    sparsity_target, sparsity_cost, sparsity_decay : float
        Hinton's sparsity penalty: pushes the running mean activation of each hidden unit
        (decay ``sparsity_decay``) toward ``sparsity_target``; off when the target is None.
    max_norm : float, optional
        Caps the L2 norm of each hidden unit's incoming weight vector after every update.
    clip_grad_norm : float, optional
        Clips the global gradient norm before every update.
    monitor_rows : int, default 1000
        Rows of training (and validation) data the per-epoch monitors use, evenly spread over
        the data and chosen once per ``fit`` (0: no monitors). They run every
        ``monitor_every`` epochs and at the last one.
    monitor_every : int, optional
        Epochs between two computations of the monitors (see the attribute).
    centering : bool, default False
        Centered gradients (Melchior, Fischer & Wiskott 2016): the statistics enter the weight
        gradient as deviations from offsets, the training data's mean for the visible units
        and a running mean (``offset_decay``) of the hidden units' mean activation on the
        data, and the biases get the matching corrections. The model stays an ordinary RBM
        (this is an update rule, not another model). Units without learned variances only.
        On MNIST it learned faster early (60 PCD-1 epochs: -88.2 nats against -92.2), but
        a 2,657-epoch PCD-1 run at learning rate 0.01 degraded after about 1,400 epochs
        (test -309.7 nats) and an hour at 0.005 ended at -86.97 against -86.19 without
        (benchmarks/RESULTS.md): watch long runs.
    offset_decay : float, default 0.99
        Decay of the hidden offsets' running mean (Melchior et al.'s sliding factor 0.01).
    init_visible_bias : bool, default True
        Set the visible biases from the training data's means when training starts (Hinton's
        guide); False keeps the model's own, for a model started from another
        (:meth:`deepbelief.nn.RBM.transposed`).
    sample_data : bool, default False
        Treat the training rows of Bernoulli visible units as probabilities and draw a fresh
        binary sample of each batch for every update ("dynamic binarization"): grey levels
        in [0, 1] become an endless supply of binary images instead of one fixed draw the
        model can memorise. On MNIST an hour of PCD-1 reached -84.97 and -84.75 nats with it
        (two seeds) against -86.19 without, the train-test gap shrinking from 3.4 to 1.1 nats
        (benchmarks/RESULTS.md).
    mixed_precision : bool, default False
        Multiply matrices in bfloat16 (``torch.autocast``), with float32 accumulation, float32
        unit inputs, sampling and parameters (RBMs whose units have no learned variances).
        Several times faster on GPUs and on CPUs with AVX512-BF16 or AMX
        (:func:`native_bfloat16`); slower elsewhere.
    dropout : float, default 0.0
        Dropout RBM (Srivastava et al. 2014, section 8): each update draws, for every training
        row, a mask keeping each hidden unit with probability ``1 - dropout``; dropped units
        are 0 in that row's positive statistics, in every Gibbs step of its CD-k chain and in
        its negative statistics. Persistent chains (PCD, PT) draw a mask of their own per
        chain per update (PT: per chain at every temperature; its swaps compare the unmasked
        free energies). A conv RBM drops detection units (each position of each feature
        map); a dropped unit leaves its max-pooling block's softmax. Units with no learned
        variances, without centering; bfloat16 products (``mixed_precision``) do not apply
        to a dense RBM's dropout updates. The trained
        weights are used as they are, not scaled by ``1 - dropout`` (the rule of dropout
        networks): on scikit-learn's digits (X / 16, 30 % held out, 100 hidden units, CD-1,
        dropout 0.5, 20 epochs of batches of 20, the other settings' defaults, means of 3
        seeds) the held-out reconstruction error was 0.0219
        as trained against 0.0268 scaled, and a logistic regression on the features scored
        0.962 against 0.957 (without dropout: 0.0113 and 0.974).
    callbacks : sequence of Callback
    generator : torch.Generator, optional
        All randomness (shuffling, sampling, chain starts) comes from it.

    Attributes
    ----------
    monitor_every : int or None
        Settable; saved in checkpoints with the other settings. Epochs between two
        computations of the monitors (reconstruction error, hidden
        activity, pseudo-log-likelihood, free-energy gap); the last epoch is always
        monitored, and every epoch when a callback has ``needs_monitors`` (EarlyStopping).
        None (the default) picks the smallest interval whose monitors cost at most about 3 %
        of the training time (``MONITOR_BUDGET``), estimated from the sizes: 1 for most data,
        more for tiny data sets whose epochs are a few minibatches.

    Notes
    -----
    On the CPU, training on small matrix products (fewer than
    :data:`deepbelief.loop.ONE_THREAD_MACS` multiply-adds, batch x visible x hidden) runs on
    one thread: ``torch.set_num_threads(1)`` for the duration of ``fit``, restored after
    (:meth:`~deepbelief.loop.FitLoop.thread_scope`).
    """

    def __init__(
        self,
        model: RBM,
        sampler: str | Sampler = "cd",
        k: int = 1,
        n_chains: int | None = None,
        n_temperatures: int = 10,
        epochs: int = 10,
        batch_size: int = 100,
        learning_rate: float = 0.1,
        lr_schedule: str = "auto",
        momentum: float = 0.5,
        final_momentum: float = 0.9,
        momentum_epochs: int = 5,
        weight_decay: float = 2e-4,
        l1: float = 0.0,
        sparsity_target: float | None = None,
        sparsity_cost: float = 0.1,
        sparsity_decay: float = 0.95,
        max_norm: float | None = None,
        clip_grad_norm: float | None = None,
        monitor_rows: int = 1000,
        monitor_every: int | None = None,
        centering: bool = False,
        offset_decay: float = 0.99,
        init_visible_bias: bool = True,
        sample_data: bool = False,
        mixed_precision: bool = False,
        dropout: float = 0.0,
        callbacks: Sequence[Callback] = (),
        generator: torch.Generator | None = None,
    ):
        given = locals()  # the settings, validated once by their dataclass
        config = RBMSettings(**{name: given[name] for name in RBMSettings.names()})
        if isinstance(sampler, str):
            named = SamplerSettings(sampler, k, n_chains, n_temperatures)
            extra = {"n_temperatures": named.n_temperatures} if sampler == "pt" else {}
            sampler = make_sampler(named.sampler, named.k, named.n_chains, **extra)
        self.sampler = make_sampler(sampler)
        if config.centering and (model.visible.has_logvar or model.hidden.has_logvar):
            raise ValueError("centering needs units without learned variances")
        self.model = model
        self.settings = config.as_dict()
        device = model.weight.device
        generator = generator if generator is not None else make_generator(None, device)
        self._init_loop(
            config.epochs, config.batch_size, config.learning_rate, generator, callbacks
        )
        self.optimizer = self._make_optimizer()
        self.sparsity_estimate: torch.Tensor | None = None
        self.visible_offset: torch.Tensor | None = None  # centering: the data's mean statistic
        self.hidden_offset: torch.Tensor | None = None  # centering: running mean activation
        self._every = 1  # the interval of the fit in progress
        self._step_state: _StepState | None = None  # rebuilt at each epoch's first update
        self._data = self._monitor = self._validation = self._block = None
        self._block_start = self._block_end = 0
        self._autograd = model.visible.has_logvar or model.hidden.has_logvar
        self._conv = not isinstance(model, RBM)  # a ConvRBM: its own closed-form gradients
        if self._conv and config.centering:
            raise ValueError("centering needs a dense RBM; this one is convolutional")
        # binary units without centering, sparsity or bfloat16 products: the fused update
        self._fused = (
            type(model.visible) is BernoulliUnits
            and type(model.hidden) is BernoulliUnits
            and not config.centering
            and config.sparsity_target is None
            and not config.mixed_precision
            and not config.dropout
            and [id(p) for p in model.parameters()]
            == [id(model.weight), id(model.visible_bias), id(model.hidden_bias)]
        )
        if config.dropout and (self._autograd or config.centering):
            raise ValueError(
                "dropout needs an RBM whose units have no learned variances, and no centering"
            )

    records_loss = False  # the contrastive difference is no learning curve

    @property
    def lr_schedule(self) -> str:
        schedule = self.settings["lr_schedule"]
        if schedule == "auto":
            return "constant" if self.sampler.name == "cd" else "linear"
        return schedule

    def _make_optimizer(self) -> SGD:
        # weight decay is added to the weight gradient by _apply (weights only, never biases)
        return SGD(
            list(self.model.parameters()),
            lr=self.settings["learning_rate"],
            momentum=self.settings["momentum"],
        )

    # ------------------------------------------------------------------ training
    def fit(self, X: torch.Tensor, validation: torch.Tensor | None = None) -> RBMTrainer:
        """Train until ``epochs`` epochs are complete (continuing a resumed run, also from the
        middle of an epoch).

        Parameters
        ----------
        X : tensor of shape (n_samples, n_visible), or a :class:`~deepbelief.streams.RowFile`
            Training data, already in the visible units' support. A ``RowFile`` is read a
            block at a time (data larger than memory), its epochs shuffled by blocks.
        validation : tensor, optional
            Held-out rows for the free-energy gap monitor.
        """
        model = self.model
        if is_row_file(X):
            X = X.copy()  # (the caller's reads as it did)
            X.dtype, X.device = model.weight.dtype, model.weight.device
        else:
            X = torch.as_tensor(X, dtype=model.weight.dtype, device=model.weight.device)
        if validation is not None:
            validation = torch.as_tensor(validation, dtype=X.dtype, device=X.device)
        with self.thread_scope(len(X)):
            return self._fit(X, validation)

    def _fit(self, X: torch.Tensor, validation: torch.Tensor | None) -> RBMTrainer:
        model = self.model
        _check_training_data(model, X)
        if self.settings["sample_data"]:
            _check_probabilities(model, X)
        fresh = self.step == 0 and self.epoch == 0
        if fresh and self.settings["init_visible_bias"]:
            # a RowFile: its mean row, read a block at a time (the same means)
            model.init_visible_bias_from_data(_column_mean(X).unsqueeze(0) if is_row_file(X) else X)
        if self.settings["centering"] and self.visible_offset is None:
            self.visible_offset = _mean_statistic(model.visible, X)
        rows = self.settings["monitor_rows"]
        self._data, self._block = X, None
        self._monitor = spread_rows(X, rows)
        self._validation = None if validation is None else spread_rows(validation, rows)
        self._every = self._monitor_interval(len(X))
        try:
            self.run_loop(len(X))
        finally:
            self._data = self._monitor = self._validation = self._block = None
        self._warn_if_switched_off()
        return self

    def _warn_if_switched_off(self) -> None:
        """An :class:`~deepbelief.errors.UndertrainedWarning` when the last epoch's monitors
        found the binary hidden units switched off (their features then carry nothing)."""
        activity = self.history[-1].get("hidden_activity") if self.history else None
        binary = isinstance(self.model.hidden, BernoulliUnits)
        if binary and activity is not None and activity < SWITCHED_OFF:
            errors.warn(
                f"RBM training ended with the hidden units switched off (mean activation "
                f"{activity:.2g}): their features carry nothing; lower the learning rate (now "
                f"{self.settings['learning_rate']:g}) or raise the initial weight_std",
                UndertrainedWarning,
            )

    @property
    def monitor_every(self) -> int | None:
        return self.settings["monitor_every"]

    @monitor_every.setter
    def monitor_every(self, value: int | None) -> None:
        self.settings["monitor_every"] = check("monitor_every", value, integer(1, optional=True))

    def _monitor_interval(self, n_rows: int) -> int:
        """``monitor_every``, or the smallest interval whose monitors cost at most
        ``MONITOR_BUDGET`` of the training time by a rough model of both (in microseconds:
        a fixed cost per tensor operation, multiply-adds and transcendental functions)."""
        if self.monitor_every is not None:
            return self.monitor_every
        m = len(self._monitor)
        if m == 0:
            return 1
        v, h = self.model.n_visible, self.model.n_hidden
        batch = min(self.batch_size, n_rows)
        updates = -(-n_rows // batch)
        steps = getattr(self.sampler, "k", 1) * getattr(self.sampler, "n_temperatures", 1)
        update = _UPDATE_OPS * _OP_COST + (3 + 2 * steps) * batch * v * h * _MAC_COST
        update += (2 + 2 * steps) * batch * (v + h) * _ELEMENT_COST
        held_out = 0 if self._validation is None else len(self._validation)
        monitors = _MONITOR_OPS * _OP_COST + (2 * m + held_out) * v * h * _MAC_COST
        monitors += m * (3 * h + 2 * v) * _ELEMENT_COST
        return max(1, math.ceil(monitors / (MONITOR_BUDGET * updates * update)))

    def _monitored(self) -> bool:
        """Whether the epoch just completed gets its monitors."""
        if self.epoch % self._every == 0 or self.epoch >= self.epochs:
            return True
        return any(getattr(c, "needs_monitors", False) for c in self.callbacks)

    def _begin_epoch(self) -> None:
        s = self.settings
        momentum = s["momentum"] if self.epoch < s["momentum_epochs"] else s["final_momentum"]
        for group in self.optimizer.param_groups:
            group["momentum"] = momentum
        self._block = None  # a new order (or a resumed one)
        self._step_state = None

    def _update(self, rows: torch.Tensor, learning_rate: float) -> None:
        self.optimizer.param_groups[0]["lr"] = learning_rate
        batch_rows = self._batch_rows(rows.shape[0])
        if self.settings["sample_data"]:
            batch_rows = torch.bernoulli(batch_rows, generator=self.generator)
        self._apply(batch_rows)
        return None  # the loop checks the parameters every check_every updates

    def _batch_rows(self, n: int) -> torch.Tensor:
        """The training rows of the current update: a contiguous slice of a block of the
        epoch's order, gathered once for many updates (``BLOCK_ELEMENTS``)."""
        data = self._data
        start = self.batch * min(self.batch_size, data.shape[0])
        offset = start - self._block_start
        if self._block is None or offset < 0 or start + n > self._block_end:
            per_block = _rows_per_block(data.shape[1], n)
            self._block_start, offset = start, 0
            self._block_end = min(self.local_order.shape[0], start + per_block)
            order = self.local_order[self._block_start : self._block_end]
            # index_select copies whole rows: several times faster than data[order]
            self._block = data[order] if is_row_file(data) else data.index_select(0, order)
        return self._block[offset : offset + n]

    def _new_order(self, n_rows: int) -> torch.Tensor:
        if not is_row_file(self._data):
            return super()._new_order(n_rows)
        # by blocks of the size _batch_rows gathers, each one contiguous read
        block = _rows_per_block(self._data.n_features, min(self.batch_size, n_rows))
        return blocked_permutation(n_rows, block, self._order_generator)

    def _end_epoch(self, metrics: dict) -> None:
        if len(self._monitor) and self._monitored():
            metrics.update(self.monitors(self._monitor, self._validation))
        if log.isEnabledFor(logging.INFO):
            log.info("epoch %d: %s", self.epoch, _format_metrics(metrics))

    def _parameters(self):
        return self.model.parameters()

    def _divergence_hint(self) -> str:
        return (
            f"lower the learning rate (now {self.settings['learning_rate']:g}) or set "
            "clip_grad_norm"
        )

    def _apply(self, v_data: torch.Tensor) -> None:
        """One parameter update on the rows ``v_data`` (the loop checks the parameters'
        finiteness every ``check_every`` updates)."""
        model, s = self.model, self.settings
        alone = self._world == 1  # else the gradients are averaged over the processes first
        if alone and self._fused and not s["clip_grad_norm"] and self._fused_step(v_data):
            pass
        else:
            if s["dropout"] and not self._conv:  # a conv RBM's gradients drop units too
                self._dropout_gradients(v_data)
            elif self._autograd:
                self._autograd_gradients(v_data)
            elif s["mixed_precision"]:
                with torch.autocast(v_data.device.type, torch.bfloat16):
                    self._closed_form_gradients(v_data)
            elif self._fused:
                self._fused_gradients(v_data)
            else:
                self._closed_form_gradients(v_data)
            self._average_gradients()
            if s["clip_grad_norm"]:
                torch.nn.utils.clip_grad_norm_(model.parameters(), s["clip_grad_norm"])
            self._sgd_step()
        if s["max_norm"]:
            model.limit_norms_(s["max_norm"])

    def _sgd_step(self) -> None:
        """``self.optimizer.step()`` (SGD with momentum, no dampening, no Nesterov, no weight
        decay: the gradients hold it) in three multi-tensor operations on detached views of
        the parameters and the optimizer's own momentum buffers, so its ``state_dict`` is
        the same. torch's step spends several times the arithmetic of a small RBM's update
        in Python bookkeeping."""
        group = self.optimizer.param_groups[0]
        lr, momentum = group["lr"], group["momentum"]
        step = self._step()
        grads = [p.grad for p in step.params]
        for g in grads:
            if g is None:  # parameters the objective does not reach
                params = [p for p, g in zip(step.params, grads, strict=True) if g is not None]
                return _sgd(self.optimizer, params, lr, momentum)
        if momentum:
            buffers = step.buffers
            if buffers is None:
                buffers = step.buffers = _momentum_buffers(self.optimizer, step.params)
                if buffers is not None:  # they exist: one step of their own
                    torch._foreach_mul_(buffers, momentum)
                    torch._foreach_add_(buffers, grads)
                else:  # the first step with momentum: buf = grad (torch's SGD)
                    buffers = momentum_buffers(self.optimizer, step.params, grads, momentum)
            else:
                torch._foreach_mul_(buffers, momentum)
                torch._foreach_add_(buffers, grads)
            grads = buffers
        torch._foreach_add_(step.views, grads, alpha=-lr)

    def _step(self) -> _StepState:
        """What every update of the epoch uses (built at the first one)."""
        if self._step_state is None:
            params = self.optimizer.param_groups[0]["params"]
            self._step_state = _StepState(params, self.generator)
        return self._step_state

    def _autograd_gradients(self, v_data: torch.Tensor) -> torch.Tensor:
        """Gradients of ``mean F(v_data) - mean F(v_model)`` (plus penalties) by autograd."""
        model, s = self.model, self.settings
        field = model.hidden_field(v_data)
        positive = model.free_energy_from_field(v_data, field)
        hidden_input = (model.hidden_bias + field).detach()
        v_model = self.sampler.negative(model, v_data, self.generator, hidden_input=hidden_input)
        loss = positive.mean() - model.free_energy(v_model).mean()
        objective = loss
        if s["l1"]:
            objective = objective + s["l1"] * model.weight.abs().sum()
        if s["sparsity_target"] is not None:
            objective = objective + self._sparsity_penalty(model.hidden_bias + field)
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if s["weight_decay"]:
            model.weight.grad.add_(model.weight, alpha=s["weight_decay"])
        return loss.detach()

    @torch.no_grad()
    def _closed_form_gradients(self, v_data: torch.Tensor) -> None:
        """The same gradients from the units' closed-form statistics (the fast path):
        ``dF/dW = -s_v(v)^T dlogZ_h/dfield``, added into the weight gradient by ``addmm``."""
        if self._fused and not torch.is_autocast_enabled(v_data.device.type):
            return self._fused_gradients(v_data)
        if self._conv:
            return self._conv_gradients(v_data)
        model, s = self.model, self.settings
        visible, hidden = model.visible, model.hidden
        weight, visible_bias, hidden_bias = model.weight, model.visible_bias, model.hidden_bias
        x_data = model.hidden_input(v_data)
        v_model = self.sampler.negative(model, v_data, self.generator, hidden_input=x_data)
        stat_data, bias_data = hidden.log_partition_grads(x_data, hidden_bias)
        stat_model, bias_model = hidden.log_partition_grads(
            model.hidden_input(v_model), hidden_bias
        )
        s_data, s_model = visible.statistic(v_data), visible.statistic(v_model)
        if s["centering"]:
            mu, lam = self.visible_offset, self._update_hidden_offset(stat_data)
            s_data, s_model = s_data - mu, s_model - mu
            stat_data, stat_model = stat_data - lam, stat_model - lam
        n_data, n_model = len(v_data), len(v_model)
        if torch.is_autocast_enabled(v_data.device.type):  # one product: the difference rounds
            both = torch.cat([s_data, s_model]).t()
            stats = torch.cat([stat_data / -n_data, stat_model / n_model])
            weight.grad = (both @ stats).to(weight.dtype).add_(weight, alpha=s["weight_decay"])
        else:
            grad = torch.addmm(
                weight, s_data.t(), stat_data, beta=s["weight_decay"], alpha=-1 / n_data
            )
            weight.grad = grad.addmm_(s_model.t(), stat_model, alpha=1 / n_model)
        if torch.is_autocast_enabled(v_data.device.type):
            hidden_bias.grad = bias_model.mean(0) - bias_data.mean(0)
            visible_bias.grad = visible.energy_bias_grad(v_data, visible_bias).mean(
                0
            ) - visible.energy_bias_grad(v_model, visible_bias).mean(0)
        else:  # as the fused path computes them
            hidden_bias.grad = self._mean_difference(bias_model, bias_data)
            if type(visible).energy_bias_grad is Units.energy_bias_grad:  # -state
                visible_bias.grad = self._mean_difference(v_model, v_data)
            else:
                visible_bias.grad = self._mean_difference(
                    visible.energy_bias_grad(v_data, visible_bias),
                    visible.energy_bias_grad(v_model, visible_bias),
                )
        if s["centering"]:  # the biases absorb the offsets' share of the weight step
            centered = weight.grad - s["weight_decay"] * weight  # minus the centered gradient
            hidden_bias.grad.sub_((centered * mu[:, None]).sum(0))
            visible_bias.grad.sub_((centered * lam).sum(1))
        if s["l1"]:
            weight.grad.add_(torch.sign(weight), alpha=s["l1"])
        if s["sparsity_target"] is not None:
            push = self._sparsity_push(x_data)
            hidden_bias.grad.add_(push)
            weight.grad.addr_(s_data.mean(0), push)

    @torch.no_grad()
    def _dropout_gradients(self, v_data: torch.Tensor) -> None:
        """The gradients of a dropout RBM (``dropout``): the closed-form CD statistics with
        each row's hidden statistics multiplied by its mask, the negative phase run with the
        masks too (:meth:`_dropout_negative`)."""
        model, s = self.model, self.settings
        visible, hidden, weight = model.visible, model.hidden, model.weight
        mask = self._dropout_mask(len(v_data))
        x_data = model.hidden_input(v_data)
        v_model, mask_model = self._dropout_negative(v_data, x_data, mask)
        stat_data, bias_data = (
            g * mask for g in hidden.log_partition_grads(x_data, model.hidden_bias)
        )
        stat_model, bias_model = (
            g * mask_model
            for g in hidden.log_partition_grads(model.hidden_input(v_model), model.hidden_bias)
        )
        s_data, s_model = visible.statistic(v_data), visible.statistic(v_model)
        grad = torch.addmm(
            weight, s_data.t(), stat_data, beta=s["weight_decay"], alpha=-1 / len(v_data)
        )
        weight.grad = grad.addmm_(s_model.t(), stat_model, alpha=1 / len(v_model))
        model.hidden_bias.grad = bias_model.mean(0) - bias_data.mean(0)
        b = model.visible_bias
        b.grad = visible.energy_bias_grad(v_data, b).mean(0)
        b.grad -= visible.energy_bias_grad(v_model, b).mean(0)
        if s["l1"]:
            weight.grad.add_(torch.sign(weight), alpha=s["l1"])
        if s["sparsity_target"] is not None:
            push = self._sparsity_push(x_data)
            model.hidden_bias.grad.add_(push)
            weight.grad.addr_(s_data.mean(0), push)

    def _dropout_mask(self, n: int) -> torch.Tensor:
        """``n`` rows of hidden units kept (1) with probability ``1 - dropout``, else 0."""
        weight = self.model.weight
        keep = weight.new_full((n, self.model.n_hidden), 1 - self.settings["dropout"])
        return torch.bernoulli(keep, generator=self.generator)

    def _dropout_negative(self, v_data, x_data, mask, p_data=None):
        """The negative particles of a dropout update and their masks. CD-k runs from the
        data rows with their masks, the dropped hidden units 0 at every step (from the hidden
        means ``p_data`` when given); any other sampler runs its chains on the model whose
        ``sample_hidden`` drops the units of a mask per chain drawn for this update (PT's
        chains at temperature 1 are its first rows)."""
        model, sampler, g = self.model, self.sampler, self.generator
        if type(sampler) is CD and "negative" not in sampler.__dict__:
            if p_data is None:
                h = model.hidden.sample(x_data, None, g) * mask
            else:
                h = model.hidden.sample_given_mean(p_data, g)
            for _ in range(sampler.k - 1):
                h = self._dropped_sample(model.sample_visible(h, generator=g), mask, 1.0, g)
            if sampler.reconstruction == "mean":
                return model.visible_mean(h), mask
            return model.sample_visible(h, generator=g), mask
        masks = {}  # rows -> this update's mask of as many chains

        def sample_hidden(v, beta=1.0, generator=None):
            if len(v) not in masks:
                masks[len(v)] = self._dropout_mask(len(v))
            return self._dropped_sample(v, masks[len(v)], beta, generator)

        masked = copy.copy(model)  # the same Parameters, a sample_hidden of its own
        masked.sample_hidden = sample_hidden
        v_model = sampler.negative(masked, v_data, g, hidden_input=x_data)
        # PCD: the mask of its chains; PT: of its chains at every temperature, temperature 1
        # (the negative particles) first
        chain_mask = masks[max(masks)] if masks else self._dropout_mask(len(v_model))
        return v_model, chain_mask[: len(v_model)]

    def _dropped_sample(self, v, mask, beta=1.0, generator=None) -> torch.Tensor:
        """``h ~ p(h | v)`` with the units where ``mask`` is 0 dropped. A conv RBM's units
        are dropped from their inputs (a dropped unit of a max-pooling block leaves the
        block's softmax), a dense RBM's independent units by zeroing their sample."""
        model = self.model
        if self._conv:
            x = _dropped(model.hidden_input(v, beta), mask)
            return model.hidden.sample(x, None, generator)
        return model.sample_hidden(v, beta, generator) * mask

    @torch.no_grad()
    def _conv_gradients(self, v_data: torch.Tensor) -> None:
        """The closed-form gradients of a conv RBM (:meth:`deepbelief.nn.ConvRBM.free_energy_grads`
        of the data minus the negative particles'), with the penalties."""
        model, s = self.model, self.settings
        x_data = model.hidden_input(v_data)
        if s["dropout"]:  # the dropped units' inputs -inf: mean and samples 0
            mask = self._dropout_mask(len(v_data))
            p_data = model.hidden.mean(_dropped(x_data, mask))
            v_model, mask = self._dropout_negative(v_data, x_data, mask, p_data)
            p_model = model.hidden.mean(_dropped(model.hidden_input(v_model), mask))
        else:
            p_data = model.hidden.mean(x_data)
            v_model = self._conv_negative(v_data, x_data, p_data)
            p_model = model.hidden_mean(v_model)
        data = model.free_energy_grads(v_data, p_data)
        negative = model.free_energy_grads(v_model, p_model)
        for param, d, n in zip(model.parameters(), data, negative, strict=True):
            param.grad = (d - n).to(param.dtype)
        weight, map_bias = model.weight, model.map_bias
        if s["weight_decay"]:
            weight.grad.add_(weight, alpha=s["weight_decay"])
        if s["l1"]:
            weight.grad.add_(torch.sign(weight), alpha=s["l1"])
        if s["sparsity_target"] is not None:  # the push on every unit's input
            push = self._sparsity_push(x_data).expand(len(v_data), -1)
            extra = model.free_energy_grads(v_data, push)
            weight.grad.sub_(extra[0])
            map_bias.grad.sub_(extra[2])

    def _conv_negative(self, v_data, x_data, p_data) -> torch.Tensor:
        """The negative particles of a conv RBM's update: contrastive divergence run here
        from the hidden means already computed (the draws of
        :class:`~deepbelief.samplers.CD`), other samplers asked."""
        sampler, model, g = self.sampler, self.model, self.generator
        if type(sampler) is not CD or "negative" in sampler.__dict__:
            return sampler.negative(model, v_data, g, hidden_input=x_data)
        h = model.hidden.sample_given_mean(p_data, g)
        for _ in range(sampler.k - 1):
            h = model.sample_hidden(model.sample_visible(h, generator=g), generator=g)
        if sampler.reconstruction == "mean":
            return model.visible_mean(h)
        return model.sample_visible(h, generator=g)

    def _fused_statistics(self, v: torch.Tensor, step: _StepState):
        """Binary units' statistics of an update in the fewest tensor operations, on detached
        views of the parameters: ``(p_data, v_model, p_model)``, the hidden means given the
        data, the negative particles and the hidden means given them. Contrastive divergence
        and persistent CD are run here, drawing from the generator in
        :class:`~deepbelief.samplers.CD`'s and :class:`~deepbelief.samplers.PCD`'s order;
        other samplers (subclasses, or a sampler whose ``negative`` was replaced) are asked
        for their particles."""
        sampler = self.sampler
        W, b, c = step.views  # weight, visible_bias, hidden_bias
        W_t, kw = step.weight_t, step.draw
        x_data = torch.addmm(c, v, W)
        p_data = torch.sigmoid(x_data)
        kind = type(sampler) if "negative" not in sampler.__dict__ else None  # not replaced
        if kind is CD:
            h = torch.rand(p_data.shape, **kw).lt_(p_data)
            for _ in range(sampler.k - 1):
                p = torch.sigmoid(torch.addmm(b, h, W_t))
                p = torch.sigmoid(torch.addmm(c, torch.rand(p.shape, **kw).lt_(p), W))
                h = torch.rand(p.shape, **kw).lt_(p)
            v_model = torch.sigmoid(torch.addmm(b, h, W_t))
            if sampler.reconstruction != "mean":
                v_model = torch.rand(v_model.shape, **kw).lt_(v_model)
        elif kind is PCD:  # its Gibbs steps on its chains, as PCD.negative runs them
            v_model = sampler.chains
            if v_model is None:
                v_model = sampler._init_chains(v, self.generator)
            for _ in range(sampler.k):
                p = torch.sigmoid(torch.addmm(c, v_model, W))
                p = torch.sigmoid(torch.addmm(b, torch.rand(p.shape, **kw).lt_(p), W_t))
                v_model = torch.rand(p.shape, **kw).lt_(p)
            sampler.chains = v_model
        else:
            v_model = sampler.negative(self.model, v, self.generator, hidden_input=x_data)
        return p_data, v_model, torch.sigmoid(torch.addmm(c, v_model, W))

    @torch.no_grad()
    def _fused_gradients(self, v: torch.Tensor) -> None:
        """:meth:`_closed_form_gradients` of binary units (no centering, no sparsity) from
        :meth:`_fused_statistics`, into gradient tensors kept from one update to the next:
        the same numbers and the same draws from the generator, in a third less time at
        small sizes."""
        s, step = self.settings, self._step()
        p_data, v_model, p_model = self._fused_statistics(v, step)
        grad_w, grad_b, grad_c = step.gradients()
        W = step.views[0]
        torch.addmm(W, v.t(), p_data, beta=s["weight_decay"], alpha=-1 / v.shape[0], out=grad_w)
        grad_w.addmm_(v_model.t(), p_model, alpha=1 / v_model.shape[0])
        step.mean_difference(p_model, p_data, out=grad_c)
        step.mean_difference(v_model, v, out=grad_b)
        if s["l1"]:
            grad_w.add_(torch.sign(W), alpha=s["l1"])

    def _fused_step(self, v: torch.Tensor) -> bool:
        """The whole update of binary units, the gradient entering where it goes in the
        products that compute it: the momentum buffers (``buf = momentum * buf + gradient``,
        then the parameters take their step) or, without momentum, the parameters
        themselves; torch's SGD up to rounding, in about a sixth less time than gradients
        and step apart at small sizes. Leaves the ``.grad`` tensors unset. Returns False,
        doing nothing, at the first step with momentum (the buffers start as the
        gradient)."""
        group = self.optimizer.param_groups[0]
        momentum, lr = group["momentum"], group["lr"]
        step = self._step_state or self._step()
        if momentum and step.bias_rows is None:
            step.buffers = _momentum_buffers(self.optimizer, step.params)
            if step.buffers is None:
                return False
            step.bias_rows = (step.buffers[1].unsqueeze(0), step.buffers[2].unsqueeze(0))
        if not step.fused:
            for p in step.params:  # the .grad tensors would be stale: drop them
                p.grad = None
            step.fused = True
        s = self.settings
        p_data, v_model, p_model = self._fused_statistics(v, step)
        n_data, n_model = v.shape[0], v_model.shape[0]
        mean_data = step.mean_row(n_data)
        mean_model = mean_data if n_model == n_data else step.mean_row(n_model)
        W = step.views[0]
        if momentum:  # the buffers take the gradient, then the parameters a step
            buf_w = step.buffers[0]
            buf_w.addmm_(v.t(), p_data, beta=momentum, alpha=-1 / n_data)
            buf_w.addmm_(v_model.t(), p_model, alpha=1 / n_model)
            if s["weight_decay"]:
                buf_w.add_(W, alpha=s["weight_decay"])
            if s["l1"]:
                buf_w.add_(torch.sign(W), alpha=s["l1"])
            row_b, row_c = step.bias_rows  # buf = momentum * buf + a.mean(0) - b.mean(0)
            row_c.addmm_(mean_model, p_model, beta=momentum).addmm_(mean_data, p_data, alpha=-1)
            row_b.addmm_(mean_model, v_model, beta=momentum).addmm_(mean_data, v, alpha=-1)
            torch._foreach_add_(step.views, step.buffers, alpha=-lr)
            return True
        # the parameters take -lr times the gradient (penalties on the weights before the
        # step, as the gradient has them)
        signs = torch.sign(W) if s["l1"] else None  # both penalties at the weights before
        if s["weight_decay"]:
            W.mul_(1 - lr * s["weight_decay"])
        if s["l1"]:
            W.add_(signs, alpha=-lr * s["l1"])
        W.addmm_(v.t(), p_data, alpha=lr / n_data).addmm_(v_model.t(), p_model, alpha=-lr / n_model)
        row_b, row_c = step.param_rows
        row_c.addmm_(mean_model, p_model, alpha=-lr).addmm_(mean_data, p_data, alpha=lr)
        row_b.addmm_(mean_model, v_model, alpha=-lr).addmm_(mean_data, v, alpha=lr)
        return True

    def _mean_difference(self, a, b, out=None) -> torch.Tensor:
        """``a.mean(0) - b.mean(0)`` as the fused path computes it."""
        return self._step().mean_difference(a, b, out=out)

    def _update_hidden_offset(self, stat_data: torch.Tensor) -> torch.Tensor:
        """Fold the batch's mean hidden statistic into the running hidden offset (in a
        distributed run, the mean over every process's batch: the offset of one process on
        the concatenated batch)."""
        mean = self._batch_mean(stat_data).to(self.model.weight.dtype)
        if self.hidden_offset is None:
            self.hidden_offset = mean
        else:
            self.hidden_offset.lerp_(mean, 1.0 - self.settings["offset_decay"])
        return self.hidden_offset

    def _sparsity_push(self, hidden_input: torch.Tensor) -> torch.Tensor:
        """``cost * (q - p)``: the sparsity penalty's gradient on each hidden unit's input,
        with ``q`` a running mean of the hidden activations (Hinton's guide, section 11; in a
        distributed run, of every process's batch)."""
        s = self.settings
        with torch.no_grad():
            q = self._batch_mean(self.model.hidden.mean(hidden_input, self.model.hidden_logvar))
            if self.sparsity_estimate is None:
                self.sparsity_estimate = q
            else:
                decay = s["sparsity_decay"]
                self.sparsity_estimate = decay * self.sparsity_estimate + (1 - decay) * q
            return s["sparsity_cost"] * (self.sparsity_estimate - s["sparsity_target"])

    def _batch_mean(self, rows: torch.Tensor) -> torch.Tensor:
        """The mean row of this update's batch: over every process's rows in a distributed
        run (their batches are the same size: shards are padded to equal lengths)."""
        mean = rows.mean(0)
        if getattr(self, "_world", 1) > 1:
            distributed.average_([mean])
        return mean

    def _sparsity_penalty(self, hidden_input: torch.Tensor) -> torch.Tensor:
        """Surrogate whose gradient is :meth:`_sparsity_push` on each hidden unit's input."""
        return (self._sparsity_push(hidden_input) * hidden_input.mean(0)).sum()

    @torch.no_grad()
    def monitors(self, X: torch.Tensor, validation: torch.Tensor | None = None) -> dict:
        """Reconstruction error, mean hidden activation (a warning when binary hidden units
        have all switched off), pseudo-log-likelihood per sample (Bernoulli visible units;
        estimated from one feature per row, the features in turn:
        :func:`deepbelief.evaluation.pseudo_log_likelihood_estimate`) and, with validation
        data, the free-energy gap (validation minus training, over as many rows of each).

        The training rows' one product with the weights serves every monitor; with the
        reconstruction's (and the validation rows') that is all the matrix work."""
        model = self.model
        X = torch.as_tensor(X, dtype=model.weight.dtype, device=model.weight.device)
        field = model.hidden_field(X)
        x = model.hidden_bias + field
        h = model.hidden.mean(x, model.hidden_logvar)
        error = ((model.visible_mean(h) - X) ** 2).mean()
        out = {"reconstruction_error": float(error)}
        activity = float(h.mean())
        out["hidden_activity"] = activity
        if isinstance(model.hidden, BernoulliUnits) and activity < SWITCHED_OFF:
            log.warning(
                "epoch %d: the hidden units are switched off (mean activation %.2g); lower the "
                "learning rate (now %g) or raise the initial weight_std",
                self.epoch,
                activity,
                self.settings["learning_rate"],
            )
        if isinstance(model.visible, BernoulliUnits):
            out["pseudo_log_likelihood"] = evaluation.pseudo_log_likelihood_estimate(
                model, X, hidden_field=field
            )
        if validation is not None:
            rows = min(len(X), len(validation))
            train = model.free_energy_from_field(X[:rows], field[:rows]).mean()
            out["free_energy_gap"] = float(model.free_energy(validation[:rows]).mean() - train)
        if isinstance(self.sampler, Sampler) and self.sampler.name == "pt":
            out["swap_rate_min"] = float(self.sampler.swap_rates.min())
        return out

    # ------------------------------------------------------------------ checkpoints
    def _rule_state(self) -> dict:
        return {
            "model": dict(self.model.state_dict()),
            "optimizer": self.optimizer.state_dict(),
            "sampler": self.sampler.state_dict(),
            "sparsity_estimate": self.sparsity_estimate,
            "visible_offset": self.visible_offset,
            "hidden_offset": self.hidden_offset,
        }

    def _load_rule_state(self, state: dict) -> None:
        self._step_state = None  # other momentum buffers
        device = self.model.weight.device
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.sampler.load_state_dict({k: v.to(device) for k, v in state["sampler"].items()})
        self.sparsity_estimate, self.visible_offset, self.hidden_offset = (
            None if state.get(k) is None else state[k].to(device)
            for k in ("sparsity_estimate", "visible_offset", "hidden_offset")
        )

    def state_dict(self) -> dict:
        """Everything needed to continue training exactly after the last completed update:
        weights, optimizer, chains, generator, the position in the epoch (the fit loop's
        :meth:`~deepbelief.loop.FitLoop.loop_state`)."""
        return self.loop_state()

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (also one written on another device type, or by an
        earlier version that kept epoch ends only)."""
        if "rule" not in state:  # before the shared fit loop: the rule's parts at the top
            parts = ("model", "optimizer", "sampler")
            parts += ("sparsity_estimate", "visible_offset", "hidden_offset")
            state = {**state, "rule": {k: state.get(k) for k in parts}}
        self.load_loop_state(state)

    def _to_state(self) -> dict:
        return {
            "model_config": self.model.config(),
            "sampler_config": self.sampler.config(),
            "settings": {**self.settings, "epochs": self.epochs},
            "device": str(self.model.weight.device),
            "trainer": self.state_dict(),
        }

    @classmethod
    def _from_state(cls, state: dict, device=None) -> RBMTrainer:
        """Rebuild from :meth:`_to_state` on ``device`` (default: the device that wrote it, or
        the CPU when that one is not available here)."""
        device = loading_device(state["device"] if device is None else device)
        saved = state["trainer"]
        dtype = (saved.get("rule") or saved)["model"]["weight"].dtype
        model = layer_from_config(state["model_config"], dtype=dtype, device=device)
        trainer = cls(
            model,
            sampler=sampler_from_config(state["sampler_config"]),
            generator=torch.Generator(device=device),
            **state["settings"],
        )
        trainer.load_state_dict(state["trainer"])
        return trainer

    def save_checkpoint(self, path) -> None:
        """Write the whole training state to ``path`` (atomically): after an interruption it
        holds the last completed update, and :meth:`from_checkpoint` continues exactly.

        In a distributed run every process calls it at the same point of training (it is
        collective, as ``torch.distributed.checkpoint.save`` is): rank 0 writes the file, with
        what each process holds of its own (persistent chains, random streams), and
        :meth:`from_checkpoint` on as many processes gives each process its part."""
        distributed.write_together(path, "checkpoint", self._to_state())

    @classmethod
    def from_checkpoint(cls, path, callbacks: Sequence[Callback] = (), device=None) -> RBMTrainer:
        """Rebuild a trainer (and its model) from :meth:`save_checkpoint`, on ``device``
        (default: the writer's, or the CPU); ``fit`` continues."""
        _, tree = read_file(path)
        trainer = cls._from_state(distributed.own_state(tree), device=device)
        trainer.callbacks = list(callbacks)
        return trainer


class _StepState:
    """What every update of an epoch reuses: the parameters, their detached views, the
    optimizer's momentum buffers, gradient tensors (the fused path's), rows of ``1 / n``
    (``mean_difference``) and the generator's keyword arguments."""

    def __init__(self, params, generator=None):
        self.params = list(params)
        self.views = [p.detach() for p in self.params]
        like = self.views[0]
        self.draw = {"generator": generator, "dtype": like.dtype, "device": like.device}
        self.buffers: list | None = None
        self.bias_rows: tuple | None = None  # the fused path's bias buffers, as rows
        if like.dim() == 2:  # the fused path's (a dense RBM: weight, visible, hidden bias)
            self.weight_t = like.t()
            self.param_rows = (self.views[1].unsqueeze(0), self.views[2].unsqueeze(0))
        self.fused = False  # the fused step has dropped the .grad tensors
        self._weights: dict[int, torch.Tensor] = {}

    def gradients(self) -> list[torch.Tensor]:
        """The parameters' ``.grad`` tensors, created (uninitialised) where missing."""
        grads = [p.grad for p in self.params]
        for g in grads:
            if g is None:
                for p, view in zip(self.params, self.views, strict=True):
                    if p.grad is None:
                        p.grad = torch.empty_like(view)
                return [p.grad for p in self.params]
        return grads

    def mean_difference(self, a, b, out=None, beta=None) -> torch.Tensor:
        """``a.mean(0) - b.mean(0)`` as two products of a row of ``1 / n`` with the rows
        (under half the time of four reductions at a minibatch of ten); with ``beta``,
        ``beta * out`` plus that, in ``out``."""
        mean_a, mean_b = self.mean_row(a.shape[0]), self.mean_row(b.shape[0])
        if out is None:
            return torch.mm(mean_a, a).addmm_(mean_b, b, alpha=-1)[0]
        row = out.unsqueeze(0)
        if beta is None:
            torch.mm(mean_a, a, out=row)
        else:
            row.addmm_(mean_a, a, beta=beta)
        row.addmm_(mean_b, b, alpha=-1)
        return out

    def mean_row(self, n: int) -> torch.Tensor:
        """A row of ``1 / n``, kept per ``n`` (in the parameters' dtype and device, as the
        rows are)."""
        weights = self._weights.get(n)
        if weights is None:
            like = self.views[0]
            weights = torch.full((1, n), 1 / n, dtype=like.dtype, device=like.device)
            self._weights[n] = weights
        return weights


def _momentum_buffers(optimizer, params) -> list | None:
    """The optimizer's momentum buffers of ``params``, or None unless all exist."""
    buffers = [optimizer.state[p].get("momentum_buffer") for p in params]
    return None if any(b is None for b in buffers) else buffers


@torch.no_grad()
def _sgd(optimizer, params, lr, momentum) -> None:
    """torch's SGD step of ``params`` (those with gradients)."""
    grads = [p.grad for p in params]
    if momentum:
        grads = momentum_buffers(optimizer, params, grads, momentum)
    torch._foreach_add_([p.detach() for p in params], grads, alpha=-lr)


def _rows_per_block(n_columns: int, batch: int) -> int:
    """Rows gathered at once: whole batches of about :data:`BLOCK_ELEMENTS` values."""
    return max(batch, BLOCK_ELEMENTS // max(1, n_columns) // batch * batch)


def spread_rows(X: torch.Tensor, n: int) -> torch.Tensor:
    """At most ``n`` rows of ``X``, evenly spread over it (all of them when it has fewer)."""
    if n >= len(X):
        return X[:] if is_row_file(X) else X
    return X[torch.arange(n, device=X.device) * len(X) // n]


def _check_training_data(model, X) -> None:
    """DataError for rows a dense RBM cannot take (not 2-D, another width), and for a value
    that is not finite or outside the visible units' support, named by row and column
    (NaN used to surface as a divergence, values outside the support trained silently).
    Two passes of ``aminmax`` when all is well (about 16 ms on MNIST's training set); a
    :class:`~deepbelief.streams.RowFile` is left to its reader's checks (a second read of
    data larger than memory would cost a whole pass over the disk)."""
    if is_row_file(X):
        return
    if getattr(model, "n_visible", None) and model.weight.dim() == 2:
        if X.dim() != 2 or X.shape[1] != model.n_visible:
            raise DataError(
                f"X must have shape (rows, {model.n_visible}) for this RBM's visible units; "
                f"got {tuple(X.shape)}"
            )
    if not X.numel():
        return
    low, high = torch.aminmax(X)  # NaN and infinities show in the extremes
    if not (bool(torch.isfinite(low)) and bool(torch.isfinite(high))):
        rows = X.reshape(len(X), -1)
        row, column = (int(i) for i in (~torch.isfinite(rows)).nonzero()[0])
        raise DataError(
            f"X holds {float(rows[row, column])} at row {row}, column {column} (counting from "
            "0); remove or impute such values"
        )
    problem = model.support_error(X)
    if problem is not None:
        raise DataError(f"X does not fit the visible units ({model.visible.name}): {problem}")


def _check_probabilities(model: RBM, X) -> None:
    """``sample_data`` needs Bernoulli visible units and rows of probabilities (a tensor's
    :func:`_check_training_data` has checked; a RowFile is scanned here)."""
    if not isinstance(model.visible, BernoulliUnits):
        raise ValueError(f"sample_data needs Bernoulli visible units, not {model.visible.name}")
    if not is_row_file(X):
        return
    start = 0
    for rows in _chunks(X):
        outside = (rows < 0) | (rows > 1) | torch.isnan(rows)
        if outside.any():
            row, column = (int(i) for i in outside.nonzero()[0])
            raise ValueError(
                f"sample_data needs probabilities in [0, 1]: row {start + row}, column "
                f"{column} holds {float(rows[row, column])}"
            )
        start += len(rows)


def _chunks(X, chunk: int = 4096):
    """The rows of ``X`` (a tensor or a RowFile) in consecutive blocks."""
    return X.chunks() if is_row_file(X) else torch.split(X, chunk)


@torch.no_grad()
def _column_mean(X) -> torch.Tensor:
    """The mean row of a RowFile, read a block at a time."""
    return sum(rows.sum(0, dtype=torch.float64) for rows in X.chunks()).to(X.dtype) / len(X)


@torch.no_grad()
def _mean_statistic(units, X, chunk: int = 4096) -> torch.Tensor:
    """The mean of ``units.statistic`` over the rows of ``X`` (in chunks)."""
    total = sum(units.statistic(rows).sum(0, dtype=X.dtype) for rows in _chunks(X, chunk))
    return total / len(X)


def _format_metrics(metrics: dict) -> str:
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()
    )


def fit_rbm(model: RBM, X, validation=None, **settings) -> RBMTrainer:
    """Train ``model`` on ``X`` with :class:`RBMTrainer` settings; returns the trainer."""
    return RBMTrainer(model, **settings).fit(X, validation)


@torch.no_grad()
def propagate(rbm: RBM, X: torch.Tensor, sample: bool = False, generator=None, chunk=4096):
    """What the layer above ``rbm`` sees for every row of ``X`` (:meth:`~deepbelief.nn.RBM.output`:
    the hidden activations, a conv layer's pooling units): means, or samples."""
    return torch.cat([rbm.output(rows, sample, generator) for rows in torch.split(X, chunk)])


def pretrain_dbn(
    dbn: DBN,
    X: torch.Tensor,
    layer_settings: Sequence[dict],
    labels: torch.Tensor | None = None,
    sample_inputs: bool = False,
    generator: torch.Generator | None = None,
    callbacks_for_layer=None,
    *,
    resume: dict | None = None,
    on_layer_begin=None,
    on_layer_end=None,
) -> list[RBMTrainer]:
    """Greedy layer-wise pretraining: each RBM learns, without labels, from the activations of
    the layer below, computed once per layer (not re-propagated for every batch).

    Parameters
    ----------
    dbn : deepbelief.nn.DBN
    X : tensor of shape (n_samples, n_visible)
    layer_settings : sequence of dict
        :class:`RBMTrainer` keyword arguments for each RBM, bottom first.
    labels : int64 tensor of shape (n_samples,), optional
        Class indices; required when the DBN has label units (the top RBM then learns the
        penultimate features joined with one-hot labels).
    sample_inputs : bool, default False
        Feed each layer sampled hidden states of the layer below instead of their means.
    generator : torch.Generator, optional
        Shared by every layer's trainer and the propagations (default: a freshly seeded one).
    callbacks_for_layer : callable, optional
        ``callbacks_for_layer(i) -> list[Callback]`` for the trainer of RBM ``i``.
    resume : dict, optional
        Continue an interrupted run: ``{"layer": i, "trainer": state, "input_states":
        states}``. The layers below ``i`` must already hold their trained weights; they are
        not trained again. ``states`` are the generator states recorded before each
        propagation below layer ``i`` (as passed to the hooks), so that sampled inputs
        (``sample_inputs=True``) are drawn again exactly. ``state`` is layer ``i``'s
        :meth:`RBMTrainer.state_dict` (it also sets the generator), or None to start that
        layer afresh.
    on_layer_begin, on_layer_end : callable, optional
        ``hook(i, trainer, input_states)``, called after RBM ``i``'s trainer is built (and
        resumed) and after its training ends (before its data is propagated upward);
        ``input_states`` lists the generator state before each propagation below layer ``i``.
        A hook may add callbacks to ``trainer.callbacks``.

    Returns
    -------
    list of RBMTrainer
        One per layer trained by this call (from ``resume``'s layer on); their histories hold
        the monitors.
    """
    _check_pretrain_arguments(dbn, layer_settings, labels, resume)
    if generator is None:
        generator = make_generator(None, dbn.rbms[0].weight.device)
    with contextlib.ExitStack() as stack:
        if is_row_file(X):  # each layer's input goes to a temporary file, not to memory
            X = X.copy()
            X.dtype, X.device = dbn.rbms[0].weight.dtype, dbn.rbms[0].weight.device
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="deepbelief-"))
        else:
            folder = None
        return _pretrain_layers(
            dbn, X, layer_settings, labels, sample_inputs, generator, callbacks_for_layer,
            resume, on_layer_begin, on_layer_end, folder,
        )  # fmt: skip


def _pretrain_layers(
    dbn, X, layer_settings, labels, sample_inputs, generator, callbacks_for_layer, resume,
    on_layer_begin, on_layer_end, folder,
) -> list[RBMTrainer]:  # fmt: skip
    start = int(resume["layer"]) if resume else 0
    input_states = list(resume["input_states"])[:start] if resume else []
    data = _replay_inputs(dbn, X, labels, sample_inputs, generator, input_states, folder)
    trainers = []
    for i in range(start, len(dbn.rbms)):
        callbacks = callbacks_for_layer(i) if callbacks_for_layer else ()
        trainer = RBMTrainer(
            dbn.rbms[i], generator=generator, callbacks=callbacks, **layer_settings[i]
        )
        if i == start and resume and resume.get("trainer") is not None:
            trainer.load_state_dict(resume["trainer"])
        if on_layer_begin is not None:
            on_layer_begin(i, trainer, list(input_states))
        trainers.append(trainer.fit(data))
        if on_layer_end is not None:
            on_layer_end(i, trainer, list(input_states))
        if i < len(dbn.rbms) - 1:
            input_states.append(generator_state(generator))
            data = _layer_input(dbn, i, data, labels, sample_inputs, generator, folder)
    return trainers


def _check_pretrain_arguments(dbn, layer_settings, labels, resume) -> None:
    if len(layer_settings) != len(dbn.rbms):
        raise ValueError(f"{len(layer_settings)} layer settings for {len(dbn.rbms)} RBMs")
    if dbn.n_labels and labels is None:
        raise ValueError("this DBN has label units: pass the labels")
    if resume:
        layer, states = int(resume["layer"]), resume["input_states"]
        if not 0 <= layer < len(dbn.rbms) or len(states) < layer:
            raise ValueError(
                f"cannot resume at layer {layer} of {len(dbn.rbms)} with {len(states)} "
                "recorded input states"
            )


def _layer_input(dbn, i, data, labels, sample_inputs, generator, folder=None):
    """The input of RBM ``i + 1``, from ``data``, the input of RBM ``i`` (a RowFile in
    ``folder`` when ``data`` is one)."""
    rbm, joined = dbn.rbms[i], i + 1 == len(dbn.rbms) - 1 and dbn.n_labels

    def step(rows, where):
        out = propagate(rbm, rows, sample_inputs, generator)
        return dbn.top_visible(out, labels[where]) if joined else out

    if is_row_file(data):
        return propagate_to_file(data, step, dbn.rbms[i + 1].n_visible, folder)
    return step(data, slice(None))


def _replay_inputs(dbn, X, labels, sample_inputs, generator, input_states, folder=None):
    """The input of RBM ``len(input_states)``, drawn again from the recorded generator states
    (the generator ends as the last propagation left it)."""
    data = X
    if len(dbn.rbms) == 1 and dbn.n_labels:  # a classification RBM
        if is_row_file(X):
            n_in = dbn.rbms[0].n_visible
            data = propagate_to_file(X, lambda rows, where: dbn.top_visible(rows, labels[where]),
                                     n_in, folder)  # fmt: skip
        else:
            data = dbn.top_visible(X, labels)
    for i, state in enumerate(input_states):
        if sample_inputs:  # a bare get_state() in files written before the device type
            set_generator_state(generator, state)
        data = _layer_input(dbn, i, data, labels, sample_inputs, generator, folder)
    return data
