"""The one fit loop: epochs of shuffled minibatches, the learning-rate schedule, callbacks, the
divergence guard and "last completed step" interruption semantics.

RBM training (:class:`deepbelief.training.RBMTrainer`) and backprop fine-tuning
(:func:`deepbelief.finetune.finetune`) both run :meth:`FitLoop.run_loop`; each supplies only
its update rule (the split torch.optim makes between an ``Optimizer`` and each algorithm's
kernel): ``_update(rows, learning_rate) -> loss`` (or None), plus optional ``_begin_epoch``,
``_end_epoch`` and the state of the rule (``_rule_state``/``_load_rule_state``).

Interruptions are exact. The loop's state (:meth:`FitLoop.loop_state`) names the last
completed update: epoch, update count, the position in the epoch and the epoch's order of
rows, the generator, and the rule's own state. Ctrl-C (and SIGTERM) is deferred to the end of
the update in progress; any other exception in the middle of an update, and a divergence,
restore the state of the start of the epoch (or of the resume point), so a checkpoint written
then always describes a step that was really completed and a resumed run ends exactly as an
uninterrupted one. In a distributed run the processes agree to stop after the same update (an
interrupt on any of them rides in the update's all-reduce: :class:`AgreedInterrupt`).

The divergence guard costs no synchronisation per update: a rule whose ``_update`` returns a
finite float loss is checked at every update; one that returns None (the RBM rule) has its
parameters checked every :attr:`FitLoop.check_every` updates, at the end of every epoch and
whenever the loop stops early (an exception, Ctrl-C). Non-finite parameters found at any of
those points restore the start of the epoch, as a divergence found at its update would.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import signal
import threading
import time

import torch

from . import distributed
from .errors import DataError, DivergenceError

#: Size in bytes of a CPU generator's state (a Mersenne twister); CUDA's is 16.
_CPU_STATE_BYTES = 5056

#: On the CPU, a fit whose largest matrix product per update has fewer multiply-adds than this
#: (a batch of 10 rows times a 784 x 500 weight matrix has 3.9 million) runs on one thread
#: (:meth:`FitLoop.thread_scope`): the threads of such products wait for each other longer
#: than they compute, several times longer when other work keeps a core busy
#: (benchmarks/RESULTS.md, "Small problems").
ONE_THREAD_MACS = 1 << 22


# ---------------------------------------------------------------------- generators
def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"`` (or None) picks CUDA when available, else the CPU; any other name must be a
    device this machine has (ValueError naming it otherwise)."""
    if device in (None, "auto"):
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return distributed.local_device() if distributed.is_distributed() else torch.device("cuda")
    problem = device_problem(device)
    if problem:
        raise ValueError(f"device {str(device)!r}: {problem}")
    return torch.device(device)


def device_problem(device) -> str | None:
    """Why this machine cannot use ``device`` (None when it can)."""
    if device in (None, "auto"):
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return "not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return (
                f"not available: this machine (or this build of torch, {torch.__version__}) "
                "has no CUDA GPU; use 'cpu' or 'auto'"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"not available: this machine has {torch.cuda.device_count()} CUDA device(s)"
    elif device.type == "mps":
        return (
            "not supported: Apple's MPS has no float64, in which deepbelief computes "
            "predictions, likelihoods and scores; use 'cpu'"
        )
    elif device.type not in ("cpu", "cuda"):
        return "not supported; deepbelief runs on 'cpu' and 'cuda' devices"
    return None


def loading_device(device) -> torch.device:
    """The device to load a saved model on: ``device`` when this machine has it, else the CPU
    (a model written on a GPU machine loads anywhere)."""
    try:
        return resolve_device(device)
    except ValueError:
        return torch.device("cpu")


def make_generator(random_state, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``random_state`` (None: a fresh seed, the
    same on every process of a distributed run)."""
    generator = torch.Generator(device=device)
    if random_state is None and distributed.is_distributed():
        generator.manual_seed(distributed.shared_seed())
    elif random_state is None:
        generator.seed()
    else:
        generator.manual_seed(int(random_state) % 2**63)
    return generator


def generator_state(generator: torch.Generator) -> dict:
    """The generator's state with the device type that wrote it: ``{"device_type", "state"}``.

    Each device type keeps its own kind of state (a Mersenne twister on the CPU, a Philox
    seed and offset on CUDA); :func:`set_generator_state` restores it on any device.
    """
    return {"device_type": generator.device.type, "state": generator.get_state()}


def set_generator_state(generator: torch.Generator, saved) -> None:
    """Restore :func:`generator_state` (or a bare ``get_state()`` tensor of older files).

    A state written by the same device type continues its stream exactly. A state written by
    another device type cannot be replayed there; the generator is then seeded
    deterministically from the saved state's bytes (SHA-256), so the same file always continues
    the same way on that device type, but not as the writing device would have continued.
    """
    if isinstance(saved, torch.Tensor):  # files written before the device type was stored
        saved = {"device_type": _guess_device_type(saved), "state": saved}
    state = saved["state"].detach().to("cpu", torch.uint8)
    if saved["device_type"] == generator.device.type:
        generator.set_state(state)
        return
    digest = hashlib.sha256(state.numpy().tobytes()).digest()
    generator.manual_seed(int.from_bytes(digest[:8], "little") % 2**63)


def _guess_device_type(state: torch.Tensor) -> str:
    return "cpu" if state.numel() == _CPU_STATE_BYTES else "cuda"


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """Within the block, torch runs its CPU operations on at most ``n`` threads (None: as it
    is); the thread count is restored after.

    Small matrix products (a minibatch of ten rows times a 64 x 100 weight matrix) run several
    times slower on two threads than on one, and far slower still when another process keeps
    the other core busy: the threads wait for each other at every product. The setting is
    the process's (torch has no per-thread one), so torch work in other Python threads runs on
    ``n`` threads too while the block lasts.
    """
    before = torch.get_num_threads()
    if n is None or n >= before:
        yield
        return
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def clone_state(tree):
    """A deep copy of a state tree (nested dicts, lists and tuples) whose tensors are detached
    clones: a snapshot that later training does not change.

    Parameters
    ----------
    tree : object
        Tensors, dicts, lists, tuples and plain values (kept as they are).

    Returns
    -------
    object
    """
    if isinstance(tree, torch.Tensor):
        return tree.detach().clone()
    if isinstance(tree, dict):
        return {k: clone_state(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(clone_state(v) for v in tree)
    return tree


# ---------------------------------------------------------------------- schedules
def learning_rate_at(learning_rate: float, schedule: str, step: int, total: int) -> float:
    """The learning rate of update ``step`` out of ``total`` under ``schedule``.

    Parameters
    ----------
    learning_rate : float
        The initial rate.
    schedule : {"constant", "linear", "cosine"}
        "linear" and "cosine" end at zero.
    step, total : int

    Returns
    -------
    float
    """
    progress = min(step / max(total, 1), 1.0)
    if schedule == "linear":
        return learning_rate * (1.0 - progress)
    if schedule == "cosine":
        return learning_rate * 0.5 * (1.0 + math.cos(math.pi * progress))
    return learning_rate


# ---------------------------------------------------------------------- callbacks
class Callback:
    """Hooks called by the fit loop. Set ``loop.stop_training = True`` to stop."""

    def on_train_begin(self, loop) -> None:
        """Called before the first epoch of a fit call."""

    def on_batch_end(self, loop, batch: int, n_batches: int) -> None:
        """Called after every completed update (``batch`` counts from 0 within the epoch)."""

    def on_epoch_end(self, loop, metrics: dict) -> None:
        """Called after each epoch with that epoch's metrics."""

    def on_train_end(self, loop) -> None:
        """Called when a fit call ends: finished, stopped early, interrupted or diverged (the
        loop then holds the state of its last completed step)."""


def call(callbacks, hook: str, *args) -> None:
    """Call ``hook`` on every callback that has it."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(*args)


class ProgressBar(Callback):
    """A tqdm bar over the batches of the whole run, with the latest monitors as postfix."""

    def __init__(self, desc: str = "RBM", disable: bool | None = None):
        self.desc, self.disable, self.bar = desc, disable, None

    def on_train_begin(self, loop):
        from tqdm.auto import tqdm

        remaining = (loop.epochs - loop.epoch) * loop.batches_per_epoch - loop.batch
        self.bar = tqdm(total=remaining, desc=self.desc, unit="batch", disable=self.disable)

    def on_batch_end(self, loop, batch, n_batches):
        self.bar.update(1)

    def on_epoch_end(self, loop, metrics):
        shown = {k: v for k, v in metrics.items() if isinstance(v, float) and k != "seconds"}
        self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()}, refresh=False)

    def on_train_end(self, loop):
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------- interruption
class AgreedInterrupt(KeyboardInterrupt):
    """The interruption of a distributed run that every process raises after the same update
    (an interrupt on any process stops them all there): a checkpoint written then by all of
    them together (:func:`deepbelief.distributed.gather_differences`) continues exactly."""


def signalled(exc: KeyboardInterrupt, signum: int) -> KeyboardInterrupt:
    """``exc`` marked with the signal that caused it (``exc.signal``): the command line exits
    with 128 + its number (130 for Ctrl-C, 143 for SIGTERM), as a shell reports a process the
    signal stopped."""
    exc.signal = int(signum)
    return exc


@contextlib.contextmanager
def deferred_interrupt(loop: FitLoop):
    """Within the block, Ctrl-C (SIGINT) and SIGTERM (how a job scheduler, or torchrun at a
    second Ctrl-C, asks a process to stop) only set ``loop.interrupted``; the loop raises
    KeyboardInterrupt at the end of the update in progress, where a checkpoint holds it. A
    second signal interrupts at once. Only in the main thread, and only for a signal whose
    Python default is installed (SIGINT's ``default_int_handler``, SIGTERM's ``SIG_DFL``):
    a program's own handlers are left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if loop.interrupted:
            raise signalled(KeyboardInterrupt(), signum)
        loop.interrupted, loop.interrupt_signal = True, signum

    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    replaced = {
        number: signal.signal(number, handler)
        for number, default in defaults.items()
        if signal.getsignal(number) == default
    }
    try:
        yield
    finally:
        for number, previous in replaced.items():
            signal.signal(number, previous)


# ---------------------------------------------------------------------- the loop
class FitLoop:
    """Base class of the training algorithms: the counters and the loop.

    A subclass sets ``epochs``, ``batch_size``, ``learning_rate``, ``generator`` and
    ``callbacks`` (or calls :meth:`_init_loop`) and implements ``_update``; it may override
    ``_begin_epoch``, ``_end_epoch``, ``_parameters``, ``_rule_state``, ``_load_rule_state``,
    ``lr_schedule``, ``_divergence_hint`` and ``_update_macs`` (which sets the threads of a
    run on the CPU: :meth:`thread_scope`).

    Attributes
    ----------
    epoch : int
        Epochs completed.
    step : int
        Updates completed.
    batch : int
        Updates completed in the current epoch (0 between epochs).
    batches_per_epoch : int
    history : list of dict
        One dict of metrics per completed epoch.
    stop_training : bool
        A callback sets it to stop after the current epoch.
    """

    what = "training"
    #: Whether the mean of the updates' losses is a metric worth keeping (``"loss"``).
    records_loss = True
    #: Updates between two checks of the parameters' finiteness when ``_update`` returns None
    #: (each check is one reduction per parameter tensor and a synchronisation).
    check_every = 64
    #: Below this many multiply-adds in an update's largest product, the CPU runs one thread
    #: (:meth:`thread_scope`; 0 leaves the thread count alone).
    one_thread_macs = ONE_THREAD_MACS

    def _init_loop(self, epochs, batch_size, learning_rate, generator, callbacks) -> None:
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.learning_rate = learning_rate
        self.generator = generator
        self.callbacks = list(callbacks)
        self.epoch = self.step = self.batch = self.batches_per_epoch = 0
        self.order: torch.Tensor | None = None
        self.epoch_losses: list[float] = []
        self.history: list[dict] = []
        self.stop_training = self.interrupted = False
        self.interrupt_signal = signal.SIGINT
        #: whether every process of a distributed run stopped after the same update (as
        #: checkpoints written together need): when training ended as it should, not by an
        #: error or an interrupt on one process alone
        self.stopped_together = True
        self._consistent, self._good = True, None

    # ---------------------------------------------------------------- the rule's hooks
    lr_schedule = "constant"

    def _update(self, rows: torch.Tensor, learning_rate: float) -> float | torch.Tensor | None:
        """One update on the training rows ``rows`` (indices, a slice of the epoch's order);
        returns the loss, which is NaN or infinite when training diverged: a float, or a
        one-element tensor left on its device (the losses of :attr:`check_every` updates are
        then read in one synchronisation, and a non-finite one sends the loop back to its
        last good state as a float does), or None when the rule has no loss worth a
        synchronisation (its parameters are then checked every :attr:`check_every` updates)."""
        raise NotImplementedError

    def _begin_epoch(self) -> None:
        """Called before each epoch's first update (also when resuming mid-epoch)."""

    def _end_epoch(self, metrics: dict) -> None:
        """Add the epoch's monitors to ``metrics``; may change the rule's state."""

    def _parameters(self):
        """The tensors that must stay finite."""
        return ()

    def _rule_state(self) -> dict:
        return {}

    def _load_rule_state(self, state: dict) -> None:
        pass

    def _divergence_hint(self) -> str:
        return f"lower the learning rate (now {self.learning_rate:g})"

    def _update_macs(self, n_rows: int) -> int | None:
        """Multiply-adds of the largest matrix product of one update on ``n_rows`` rows (None:
        unknown): the batch times the largest parameter matrix, a dense layer's product."""
        sizes = [p.numel() for p in self._parameters() if p.dim() >= 2]
        return min(self.batch_size, max(1, int(n_rows))) * max(sizes) if sizes else None

    def thread_scope(self, n_rows: int):
        """The context :meth:`run_loop` trains in: torch on one CPU thread when the updates
        on ``n_rows`` rows are small products (``one_thread_macs``), as it is otherwise (other
        devices, larger products): :func:`cpu_threads`. A caller may prepare data in it."""
        params = list(self._parameters())
        macs = self._update_macs(n_rows)
        small = macs is not None and macs < self.one_thread_macs
        on_cpu = bool(params) and all(p.device.type == "cpu" for p in params)
        return cpu_threads(1 if small and on_cpu else None)

    # ---------------------------------------------------------------- state
    def loop_state(self) -> dict:
        """Everything needed to continue exactly after the last completed update (live
        tensors: clone them to keep a snapshot)."""
        # the losses still on the device join the epoch's (a checkpoint taken in a callback,
        # before the loop read them); a non-finite one leaves non-finite parameters, which
        # the loop's own checks find
        self._read_losses(self._pending, check=False)
        return {
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batch,
            "order": self.order,
            "epoch_losses": list(self.epoch_losses),
            "history": list(self.history),
            "generator": None if self.generator is None else generator_state(self.generator),
            "stop_training": self.stop_training,
            "rule": self._rule_state(),
            "streams": self._stream_states(),
            "world": getattr(self, "_world", 1),
        }

    def _stream_states(self) -> dict | None:
        """Of a distributed run stopped before its last epoch: the states of its generators
        (the epochs' orders, this process's own draws and the shared one it hands back), which
        a resumed run with as many processes takes up (:meth:`_join_processes`)."""
        streams = self.__dict__.get("_streams")
        if streams is None or self.epoch >= self.epochs:
            return None
        order, own, shared = (generator_state(g) for g in streams)
        return {"world": self._world, "order": order, "own": own, "shared": shared}

    def load_loop_state(self, state: dict) -> None:
        """Restore :meth:`loop_state` (a state written on another device type continues too:
        see :func:`set_generator_state`)."""
        self._load_rule_state(state["rule"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.batch = int(state.get("batch", 0))
        order = state.get("order")
        self.order = None if order is None else order.to(self._device()).long()
        self.epoch_losses = [float(v) for v in state.get("epoch_losses", [])]
        self._pending.clear()  # the updates undone
        self._votes.clear()
        self._resumed_streams = state.get("streams")
        self._saved_world = int(state.get("world", 1))
        self.history = list(state["history"])
        self.stop_training = bool(state.get("stop_training", False))
        if self.generator is not None and state.get("generator") is not None:
            set_generator_state(self.generator, state["generator"])

    def _snapshot(self) -> dict:
        """A copy of :meth:`loop_state` that later updates do not change. The history's
        entries are never changed once appended, so only its list is copied (cloning every
        entry at every epoch would cost time quadratic in the epochs)."""
        state = self.loop_state()
        history = state.pop("history")  # already a new list
        return {**clone_state(state), "history": history}

    def _device(self) -> torch.device:
        return self.generator.device if self.generator is not None else torch.device("cpu")

    def learning_rate_at(self, step: int, total: int) -> float:
        """The learning rate of update ``step`` out of ``total``."""
        return learning_rate_at(self.learning_rate, self.lr_schedule, step, total)

    # ---------------------------------------------------------------- the loop
    def run_loop(self, n_rows: int) -> None:
        """Train until ``epochs`` epochs are complete, from wherever the counters stand."""
        if n_rows < 1:
            raise ValueError("no rows to train on")
        self._rank, self._world = distributed.world()
        n_local = distributed.shard_size(n_rows, self._world)
        batch_size = min(self.batch_size, n_local)
        self.batches_per_epoch = -(-n_local // batch_size)
        if self.order is not None and len(self.order) == n_rows:
            self._continue_with_another_world(n_rows, batch_size)
        if self.order is not None and (
            len(self.order) != n_rows or self.batch >= self.batches_per_epoch
        ):
            raise ValueError(
                f"cannot resume at batch {self.batch + 1} of an epoch over {len(self.order)} "
                f"rows with {n_rows} rows in batches of {batch_size}"
            )
        self.stop_training = self.interrupted = False
        self.interrupt_signal = signal.SIGINT
        self._consistent, self._good = True, None
        self._order_generator = shared = self.generator
        self._streams = None
        self._votes.clear()
        if self._world > 1 and self.epoch < self.epochs:
            self._join_processes(n_rows)
        try:
            self._train(n_rows, batch_size)
        finally:
            self.generator = shared

    def _continue_with_another_world(self, n_rows: int, batch_size: int) -> None:
        """A run stopped in the middle of an epoch by another number of processes: the
        epoch's first ``batch x batch size x processes`` rows of its order are done (process
        ``r`` takes every ``processes``-th row from ``r``); continue at the last batch that
        the processes now running completed within them (redoing at most one batch of
        rows). Not exact, as a resume with another number of processes cannot be."""
        saved = self.__dict__.pop("_saved_world", self._world)
        if saved == self._world or not self.batch:
            return
        done = self.batch * min(self.batch_size, distributed.shard_size(n_rows, saved)) * saved
        self.batch = min(done // (batch_size * self._world), self.batches_per_epoch - 1)

    def _train(self, n_rows: int, batch_size: int) -> None:
        with self.thread_scope(n_rows):
            call(self.callbacks, "on_train_begin", self)
            self.stopped_together = True
            try:
                with deferred_interrupt(self):
                    while self.epoch < self.epochs and not self.stop_training:
                        self._run_epoch(n_rows, batch_size)
            except BaseException as exc:
                # every process of a distributed run stops after the same update when it
                # finishes, stops early, diverges or is interrupted (agreed); not on others
                self.stopped_together = isinstance(exc, (AgreedInterrupt, DivergenceError))
                # cut short inside an update, or after updates that diverged unnoticed
                # (parameters are checked every check_every updates): back to a completed,
                # finite step
                if self._good is not None and not (self._consistent and self._finite()):
                    self.load_loop_state(self._good)
                    self._consistent = True
                raise
            finally:
                call(self.callbacks, "on_train_end", self)

    def _new_order(self, n_rows: int) -> torch.Tensor:
        """A random order of the ``n_rows`` training rows for the next epoch."""
        return torch.randperm(n_rows, generator=self._order_generator, device=self._device())

    def _join_processes(self, n_rows: int) -> None:
        """Before a distributed run: every process starts from rank 0's parameters, draws
        the epochs' orders from one shared stream and its samples from a stream of its own
        (:mod:`deepbelief.distributed`), both seeded from ``generator``, which advances alike
        on every process and is the loop's again when it stops (what follows, such as an
        estimator's validation split, draws the same on every process); a run resumed with
        as many processes takes up the streams where they stopped instead. Processes that
        hold different numbers of rows (other data) are refused on every process."""
        counts = [int(n) for n in distributed.gathered(n_rows)]
        if len(set(counts)) > 1:
            held = ", ".join(f"rank {rank}: {n}" for rank, n in enumerate(counts))
            raise DataError(
                f"the processes of this distributed run hold different numbers of training rows "
                f"({held}); every process must read the same data"
            )
        distributed.broadcast_(self._parameters())
        device, shared = self._device(), self.generator
        order, own = torch.Generator(device=device), torch.Generator(device=device)
        streams, self._resumed_streams = self.__dict__.get("_resumed_streams"), None
        if streams is not None and streams["world"] == self._world:
            for generator, name in ((order, "order"), (own, "own"), (shared, "shared")):
                set_generator_state(generator, streams[name])
        else:
            order.manual_seed(distributed.shared_seed(shared))
            own.manual_seed((distributed.shared_seed(shared) + 7919 * self._rank) % 2**63)
        self._order_generator, self.generator = order, own
        self._streams = (order, own, shared)

    def _average_gradients(self, loss=None):
        """In a distributed run, the gradients of :meth:`_parameters` averaged over the
        processes (and ``loss``, returned as its mean; this process's vote to stop for an
        interrupt rides along: :meth:`_stopping`); else ``loss`` as it is. An update rule calls
        it between its gradients and its step."""
        if getattr(self, "_world", 1) == 1:
            return loss
        loss, stop = distributed.average_gradients(self._parameters(), loss, self.interrupted)
        self._votes.append(stop)
        return loss

    def _run_epoch(self, n_rows: int, batch_size: int) -> None:
        start = time.perf_counter()
        if self.order is None:
            self.order = self._new_order(n_rows)
            self.epoch_losses = []
        self.local_order = distributed.shard(self.order, self._rank, self._world)
        self._good = self._snapshot()
        self._begin_epoch()
        total = self.epochs * self.batches_per_epoch
        varies = self.lr_schedule != "constant"
        lr = self.learning_rate_at(self.step, total)
        unchecked, check_every = 0, max(1, int(self.check_every))
        pending = self._pending
        for rows in torch.split(self.local_order, batch_size)[self.batch :]:
            if varies:
                lr = self.learning_rate_at(self.step, total)
            self._consistent = False
            loss = self._update(rows, lr)
            if isinstance(loss, torch.Tensor):
                pending.append(loss.detach().reshape(()))
            elif loss is not None:
                if not math.isfinite(loss):
                    self._diverged(loss)
                self.epoch_losses.append(loss)
            self.step, self.batch = self.step + 1, self.batch + 1
            if len(pending) == check_every:
                self._read_losses(pending)
            if loss is None:
                unchecked += 1
                if unchecked == check_every:
                    unchecked = 0
                    if not self._finite():
                        self._diverged()
            self._consistent = True
            call(self.callbacks, "on_batch_end", self, self.batch - 1, self.batches_per_epoch)
            last = self.batch == self.batches_per_epoch  # stops after the epoch's bookkeeping
            if not last and self._stopping(check_every):
                self._read_losses(pending)
                raise self._interrupt()
        self._read_losses(pending)
        if not self._finite():
            self._diverged()
        self._consistent = False  # until the epoch's bookkeeping is done
        self.epoch, self.batch, self.order = self.epoch + 1, 0, None
        losses, self.epoch_losses = self.epoch_losses, []
        metrics = {"epoch": self.epoch, "learning_rate": lr}
        if self.records_loss and losses:
            metrics["loss"] = sum(losses) / len(losses)
        self._end_epoch(metrics)
        metrics["seconds"] = time.perf_counter() - start
        if self._world > 1:
            distributed.average_metrics(metrics)
        self.history.append(metrics)
        self._consistent = True
        call(self.callbacks, "on_epoch_end", self, metrics)
        stop = self.interrupted
        if self._world > 1:  # a time budget, early stopping or an interrupt on one process
            # stops them all; a signal that comes during the vote stays set for the next one
            self.stop_training, stop = distributed.agree_each([self.stop_training, stop])
            self.interrupted = self.interrupted or stop
            self._votes.clear()
        if stop:
            raise self._interrupt()

    def _stopping(self, check_every: int) -> bool:
        """Whether to stop for an interrupt after this update. In a distributed run, when the
        processes agree to: any process interrupted, by its vote in an update's all-reduce
        (read at once on the CPU, every ``check_every`` updates on a GPU), so that all of
        them stop after the same update (a rule that casts no votes stops at the epoch's
        end)."""
        if self._world == 1:
            return self.interrupted
        votes = self._votes
        if not votes or (len(votes) < check_every and votes[-1].device.type != "cpu"):
            return False
        agreed = bool(torch.cat(votes).any())
        votes.clear()
        self.interrupted = self.interrupted or agreed  # a signal after the votes: not lost
        return agreed

    def _interrupt(self) -> KeyboardInterrupt:
        exc = AgreedInterrupt() if self._world > 1 else KeyboardInterrupt()
        return signalled(exc, getattr(self, "interrupt_signal", signal.SIGINT))

    @property
    def _votes(self) -> list:
        """Votes to stop that all-reduces returned and the loop has not read yet."""
        return self.__dict__.setdefault("_stop_votes", [])

    @property
    def _pending(self) -> list:
        """The losses that updates left on the device and the loop has not read yet (kept
        here, not set in ``_init_loop``: a subclass need not call it)."""
        return self.__dict__.setdefault("_pending_losses", [])

    def _read_losses(self, pending: list, check: bool = True) -> None:
        """Add the device-held losses of the last ``len(pending)`` updates to the epoch's, in
        one synchronisation; with ``check``, the first non-finite one is a divergence at its
        own batch (the updates after it are undone with the rest)."""
        if not pending:
            return
        values = torch.stack(pending).to("cpu", torch.float64).tolist()
        first = self.batch - len(pending)  # the batch of pending[0], counted from 0
        pending.clear()
        for i, value in enumerate(values):
            if check and not math.isfinite(value):
                self.batch = first + i
                self._diverged(value)
            self.epoch_losses.append(value)

    def _finite(self) -> bool:
        """Whether every parameter is finite: one sum per tensor (a sum is finite exactly when
        its terms are, short of an overflow, itself a divergence)."""
        return math.isfinite(sum(float(p.detach().sum()) for p in self._parameters()))

    def _diverged(self, loss: float | None = None):
        epoch, batch = self.epoch + 1, self.batch + 1
        if loss is None:  # found by a check of the parameters after ``self.batch`` updates
            found = f"non-finite parameters after batch {self.batch}"
        else:
            found = f"batch {batch} (loss {loss})"
        self.load_loop_state(self._good)
        self._consistent = True
        kept = "the resume point" if self._good["batch"] else f"epoch {self.epoch}"
        raise DivergenceError(
            f"{self.what} diverged at epoch {epoch}, {found}; the state of {kept} was kept; "
            f"{self._divergence_hint()}"
        )
