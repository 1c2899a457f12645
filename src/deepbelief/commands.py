"""What each ``deepbelief`` subcommand does; :mod:`deepbelief.cli` parses and dispatches.

Each function takes the parsed arguments and returns the exit code. Errors are raised as
:class:`deepbelief.errors.DeepBeliefError` (or ``OSError``); the command line turns them into
one line on stderr.

Standard output carries data only (predictions, features, samples written to ``-``, metrics,
JSON); standard error carries the progress of training (bars on a terminal, one line per
epoch elsewhere: :mod:`deepbelief.progress`) and, on success, one summary line
``deepbelief: wrote ...`` (:func:`finish`). ``--quiet`` silences standard error but for
errors; with ``--json`` the summary is part of the JSON when the JSON goes to standard output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

from . import (
    dbn_estimators,  # noqa: F401  (registers the model kinds that load_model reads)
    distributed,
)
from .data import Dataset, file_kind, image_files, label_codes, load_dataset, prepare_target
from .errors import (
    DataError,
    DataWarning,
    DeepBeliefError,
    ModelFileError,
    UsageError,
    drop_advice,
    warn,
)
from .folders import (
    ModelFolder,
    check_input_path,
    check_not_input,
    output_file,
    output_folder,
)
from .io import atomic_write_bytes, atomic_writer
from .model_dir import (
    CARD_FILE,
    CHECKPOINT_FILE,
    MODEL_FILE,
    RUN_FILE,
    InputSpec,
    faint_scale,
    load_model,
    read_json,
    save_model,
    spec_to_card,
    write_json,
)
from .resources import check_device, check_memory, check_training_memory, sampling_memory
from .streams import RowFile, column_stats, file_position, holds_rows, is_row_file, write_npy

log = logging.getLogger("deepbelief")

RUN_KEYS = (  # the train options that define a run (what --resume reads back)
    "data", "target", "no_target", "no_header", "labels", "image_size", "task", "missing",
    "drop_ids", "non_numeric", "model", "layers", "conv", "visible", "hidden", "device", "seed",
    "pretrain_epochs",
    "pretrain_lr", "pretrain_batch_size", "sampler", "k", "centering", "pretrain_dropout",
    "epochs", "batch_size",
    "optimizer", "lr", "momentum", "weight_decay", "dropout", "input_dropout", "max_norm",
    "lr_schedule", "early_stopping", "average_epochs", "mixed_precision", "up_down_epochs",
    "label_training", "validation_split", "checkpoint_every", "preset", "time_budget", "shift",
)  # fmt: skip
# settings added after run.json first shipped: an older file ran with these values (the label
# RBM of a generative model was trained by CD alone)
RUN_ADDED = {"conv": None, "average_epochs": 0, "centering": False, "pretrain_dropout": 0.0,
             "non_numeric": "error", "preset": None, "time_budget": None,
             "label_training": "generative", "shift": None}  # fmt: skip


# ====================================================================== output
def print_json(payload: dict) -> None:
    """Write ``payload`` to standard output as one JSON document."""
    print(json.dumps(payload, indent=2, default=str))


def verbosity(args) -> int:
    """The estimators' ``verbose`` for the command's flags: 0 with ``--quiet``, 2 with ``-v``
    (epoch lines even on a terminal), else 1 (progress bars on a terminal, epoch lines
    elsewhere)."""
    if getattr(args, "quiet", False):
        return 0
    return 2 if getattr(args, "verbose", False) else 1


def finish(args, message: str, payload: dict | None = None) -> int:
    """The end of a successful subcommand: with ``--json`` and a ``payload``, the payload as
    JSON on standard output; otherwise, unless ``--quiet``, ``deepbelief: {message}`` on
    standard error. Returns 0."""
    if getattr(args, "json", False) and payload is not None:
        print_json(payload)
    elif not getattr(args, "quiet", False):
        print(f"deepbelief: {message}", file=sys.stderr, flush=True)
    return 0


def _where(path) -> str:
    """A path as the summary line names it (``-`` or None: standard output)."""
    return "standard output" if path is None or str(path) == "-" else str(path)


def _folder(path) -> str:
    text = str(path)
    return text if text.endswith(os.sep) else text + os.sep


def architecture(estimator) -> str:
    """``"DBNClassifier 784-256-256-10"``: the estimator's class and layer sizes (with the
    output layer of a classifier or regressor, and the label units of a generative DBN)."""
    sizes = list(estimator.dbn_.sizes)
    name = type(estimator).__name__
    kind = estimator_kind(estimator)
    if kind == "classifier":
        sizes.append(len(estimator.classes_))
    elif kind == "regressor":
        sizes.append(int(getattr(estimator, "n_outputs_", 1)))
    text = f"{name} {'-'.join(map(str, sizes))}"
    if kind == "generative":
        text += f" with {len(estimator.classes_)} label units"
    return text


#: the metric a summary line names, by task
HEADLINE = ("accuracy", "r2", "reconstruction_error")


def _headline(metrics: dict, what: str) -> str | None:
    for name in HEADLINE:
        value = metrics.get(name)
        if isinstance(value, (int, float)):
            return f"{what} {name.replace('_', ' ')} {value:.4g}"
    return None


# ====================================================================== train
def train(args) -> int:
    """``deepbelief train DATA -o MODEL_DIR`` (or ``--resume MODEL_DIR``).

    Everything is checked before any work: the options (against the estimator's own checks),
    the device, the memory the layer sizes need, the input paths and the model folder. The
    folder is locked while training; a failed run leaves an existing folder as it was and
    removes a folder it created; an interrupted run keeps ``run.json`` and the checkpoint for
    ``--resume``.
    """
    directory, settings = _checked_together(lambda: _checked_run(args))
    folder = _checked_together(lambda: _model_folder(args, directory))  # checked on rank 0
    if not distributed.is_main():  # another process of a distributed run: train, write nothing
        return _train_quietly(settings, directory)
    with _nothing_to_resume_said(folder), folder:
        task, spec, (X, y), (X_held, y_held) = _checked_together(
            lambda: _with_a_target_for(args, _training_data(settings))
        )
        estimator = _estimator(settings, task, spec, verbose=verbosity(args))
        _check_estimator(estimator)
        cached = None if is_row_file(X) else len(X)  # a RowFile is read a block at a time
        from .loop import resolve_device

        device = resolve_device(settings.device)
        check_training_memory(_layers(settings), X.shape[1], cached, device)
        if args.resume is None:
            folder.write_run(_stored_settings(settings))
        start = time.perf_counter()
        with _resume_refusal_in_the_commands_words(directory):
            estimator.fit(X, y, **_checkpointing(settings, directory))
        seconds = time.perf_counter() - start
        deadline = getattr(estimator, "_deadline", None)  # the fit's clock, kept by checkpoints
        if args.resume is not None and deadline is not None:
            seconds = deadline.spent()  # the interrupted part too (it counted this part alone)
        metrics = score(estimator, task, X_held, y_held) if len(X_held) else {}
        card = _card(task, estimator, spec, settings.data, len(X), len(X_held), seconds,
                     metrics)  # fmt: skip
        card.update(_training_choices(estimator))
        save_model(directory, estimator, card)
        (directory / CHECKPOINT_FILE).unlink(missing_ok=True)
        write_json(directory / RUN_FILE, {**read_json(directory / RUN_FILE), "finished": True})
        folder.done()
    return _report_training(args, directory, estimator, card)


def _with_a_target_for(args, data):
    """``data`` (:func:`_training_data`'s), refused when it has no target but fine-tuning
    options were given (the model is then unsupervised, which ignored them silently), or
    when it has one but ``--up-down-epochs`` was given (a classifier or regressor would
    ignore it)."""
    options = getattr(args, "fine_tuning_options", None)
    if data[0] == "unsupervised" and options and args.model == "auto" and not args.no_target:
        raise UsageError(
            f"{', '.join(options)}: {args.data} has no target, so the model is unsupervised "
            f"(greedy pretraining alone, no fine-tuning): {drop_advice(options)}, or give the "
            "data a target (--target, --labels, or y in an .npz)"
        )
    if data[0] != "unsupervised" and args.model == "auto" and args.up_down_epochs:
        model = MODEL_OF_TASK[data[0]]
        _refuse_up_down(f"{args.data} has a target, so the model is a {model}, fine-tuned")
    return data


MODEL_OF_TASK = {"classification": "classifier", "regression": "regressor"}


def _refuse_up_down(why: str):
    raise UsageError(
        f"--up-down-epochs: {why} by backprop (--epochs), not up-down; drop it, "
        "or train --model generative (or --model unsupervised)"
    )


def _training_data(settings):
    """The run's data as training sees it: ``(task, spec, (X, y), (X_held, y_held))``, the
    rows to train on and the held-out rows (the same on every process of a distributed run:
    the split follows the seed). ``X`` is a :class:`~deepbelief.streams.RowFile` when the
    data is read a block at a time (:func:`_streamed`), else an array."""
    if _streamed(settings):
        return _streamed_data(settings)
    dataset = _load(settings, Path(settings.data))
    task, y = _target(dataset, settings)
    scaling = _input_scaling(settings.visible, dataset)
    spec, X = InputSpec.fit(dataset, scaling, settings.missing, settings.drop_ids,
                            settings.non_numeric, binary=settings.visible == "auto")  # fmt: skip
    train_rows, held_out = _split(len(X), y, task, settings)
    y_train, y_held = (None, None) if y is None else (y[train_rows], y[held_out])
    return task, spec, (X[train_rows], y_train), (X[held_out], y_held)


def _input_scaling(choice: str, dataset) -> str:
    """How ``--visible`` scales the numeric columns: ``"standard"`` for Gaussian units,
    ``"minmax"`` for Bernoulli ones. ``auto`` standardises a table's numeric columns (those of
    only 0 and 1 then stay as they are, for Bernoulli units), unless they all hold only 0 and 1,
    and min-max scales images and arrays of rows (pixels).

    A Bernoulli RBM sees a min-max scaled column as a probability: columns that vary
    independently of one another (two normal columns; scikit-learn's ``make_classification``)
    give it nothing to learn beyond their means, its features barely vary over the rows, the
    RBM above them switches its units off, and fine-tuning stayed at chance (0.50 accuracy on
    the class x1 + x2 > 0, against 0.99 with Gaussian units; benchmarks/small_problems.py)."""
    if choice != "auto":
        return "standard" if choice == "gaussian" else "minmax"
    if dataset.kind != "table":
        return "minmax"
    numeric = dataset.features.select_dtypes("number")
    binary = (numeric.isin([0, 1]) | numeric.isna()).to_numpy().all()
    return "minmax" if binary else "standard"


def _model_folder(args, directory: Path) -> ModelFolder | None:
    """The checked model folder (rank 0 of a distributed run alone writes: None elsewhere)."""
    if not distributed.is_main():
        return None
    overwrite = getattr(args, "overwrite", False)
    return ModelFolder(directory, resume=args.resume is not None, overwrite=overwrite)


@contextlib.contextmanager
def _resume_refusal_in_the_commands_words(directory: Path):
    """A checkpoint that does not fit the run (its data changed) is refused with the
    command's way to start afresh, not the Python API's."""
    try:
        yield
    except ModelFileError as exc:
        from .dbn_estimators import RESTART_ADVICE

        if exc.advice != RESTART_ADVICE:
            raise
        raise exc.advised(f"to start afresh, train with -o {directory} --overwrite") from None


@contextlib.contextmanager
def _nothing_to_resume_said(folder):
    """A Ctrl-C before a fresh run wrote its settings (reading the data, say) says that there
    is nothing to resume: the folder is left as it was."""
    try:
        yield
    except KeyboardInterrupt as exc:
        if folder.wrote_run or folder.resume:
            raise
        raise KeyboardInterrupt("before training began; nothing to resume") from exc


def _checked_run(args) -> tuple[Path, argparse.Namespace]:
    """The run's folder and settings, checked before any work (the options, the inputs)."""
    directory, settings = _run_settings(args)
    _validate_settings(settings)
    check_input_path(settings.data, "DATA")
    if settings.labels is not None:
        check_input_path(settings.labels, "--labels")
    check_not_input(directory, (settings.data, settings.labels))  # e.g. inside an image folder
    return directory, settings


def _checked_together(check):
    """``check()``, which raises when the run cannot start; in a distributed run, on every
    process, and when it fails on any of them, every process stops: rank 0 with the error
    (its own, else the first process's), the others quietly, so that the run says it once."""
    try:
        result, error = check(), None
    except (DeepBeliefError, ValueError, OSError) as exc:
        result, error = None, exc
    if distributed.is_distributed():
        failed = [(rank, message) for rank, message in enumerate(distributed.gathered_objects(
            None if error is None else str(error))) if message is not None]  # fmt: skip
        if failed and not distributed.is_main():  # rank 0 says why and fails the run: an
            raise SystemExit(0)  # exit 2 here could have torchrun stop rank 0 before it said it
        if failed and error is None:
            rank, message = failed[0]
            raise UsageError(f"process {rank} of the run: {message}")
    if error is not None:
        raise error
    return result


def _checkpointing(settings, directory: Path) -> dict:
    """``fit``'s checkpoint arguments (the same on every process of a distributed run)."""
    every = settings.checkpoint_every or "auto"
    return {"checkpoint": directory / CHECKPOINT_FILE, "checkpoint_every": every}


def _train_quietly(settings, directory: Path) -> int:
    """``train`` on a process of a distributed run other than rank 0: the same data, split
    and estimator as rank 0's (same seed), fitted in step with it; rank 0 alone writes the
    checkpoint (with this process's own part: its chains and random streams), which every
    process reads for ``--resume`` (rank 0 decides whether there is one to resume from)."""
    task, spec, (X, y), _ = _checked_together(lambda: _training_data(settings))
    estimator = _estimator(settings, task, spec, verbose=0)
    estimator.fit(X, y, **_checkpointing(settings, directory))
    return 0


# ---------------------------------------------------------------------- data larger than memory
def _streamed(settings) -> bool:
    """Whether the run reads DATA a block at a time (a RowFile) instead of into memory: an
    unsupervised model (``--model unsupervised``, or ``--no-target``) of a ``.npy`` file of
    rows (2-D), without options that need the rows in memory (``--labels``,
    ``--up-down-epochs``); and always a folder of ``.npy`` shards, which only that model
    reads (UsageError for the options that do not apply to it)."""
    path = Path(settings.data)
    if not holds_rows(path):
        return False
    if path.is_dir():
        _check_shard_options(settings, path)
        return True
    unsupervised = settings.model == "unsupervised" or (
        settings.no_target and settings.model == "auto"
    )
    in_memory = settings.labels is not None or settings.up_down_epochs
    refused = settings.target is not None or settings.image_size is not None  # by load_dataset
    return unsupervised and not (in_memory or refused)


def _check_shard_options(settings, path: Path) -> None:
    if settings.model not in ("auto", "unsupervised"):
        raise UsageError(
            f"--model {settings.model} needs a target; {path}, a folder of .npy shards, has none"
        )
    given = {
        "--target": settings.target,
        "--labels": settings.labels,
        "--image-size": settings.image_size,
        "--up-down-epochs": settings.up_down_epochs,
    }
    for option, value in given.items():
        if value:
            raise UsageError(
                f"{option} does not apply to {path}, a folder of .npy shards (read a block at "
                "a time to pretrain an unsupervised model)"
            )


def _streamed_data(settings):
    """:func:`_training_data` of a ``.npy`` file or folder of shards read a block at a time:
    the last ``--validation-split`` of the rows are held out (read only to score them), the
    rows before them are trained on. For Bernoulli units each column is scaled to [0, 1] by
    its minimum and maximum over the file (one pass, as the in-memory path scales); Gaussian
    units take the rows as they are (the estimator standardises them)."""
    path = Path(settings.data)
    rows = RowFile(path)  # DataError: not numeric rows, shards with other columns
    if 0 in rows.shape:
        raise DataError(f"{path}: no data (the rows have shape {rows.shape})")
    n = len(rows)
    held = math.ceil(settings.validation_split * n) if n >= 10 else 0
    if held >= n:
        raise UsageError(
            f"--validation-split {settings.validation_split} holds out all {n} rows of {path}: "
            "none are left to train on"
        )
    scaling, offsets, scales, scale_rows = "standard", None, None, None
    if settings.visible != "gaussian":
        stats = column_stats(rows)  # DataError: a value that is not finite, by row and column
        offsets = stats["min"]
        scales = np.where(stats["max"] > offsets, stats["max"] - offsets, 1.0)
        top = float(stats["max"].max())
        if rows.file_dtype == np.uint8:  # 8-bit pixels: over 255, as read into memory
            scale = 255.0 * faint_scale(top / 255.0)
            offsets, scales = np.zeros_like(offsets), np.full_like(scales, scale)
        elif offsets.min() >= 0 and top <= 1:  # as they are (as in memory)
            offsets, scales = np.zeros_like(offsets), np.full_like(scales, faint_scale(top))
        scaling, scale_rows = "minmax", _minmax(offsets, scales)
    train = RowFile(path, rows=range(n - held), transform=scale_rows)
    held_out = RowFile(path, rows=range(n - held, n), transform=scale_rows)
    spec = InputSpec.as_is(rows.n_features, scaling, offsets, scales)
    return "unsupervised", spec, (train, None), (held_out, None)


def _minmax(offsets: np.ndarray, scales: np.ndarray):
    """Rows scaled to [0, 1] column by column (clipped: rounding only)."""
    low, scale = offsets.astype(np.float32), scales.astype(np.float32)
    return lambda rows: np.clip((rows - low) / scale, 0.0, 1.0)


def _training_choices(estimator) -> dict:
    """What training chose for itself: the settings it resolved ("auto" and preset values)
    and, after early stopping, the best epoch with its validation scores."""
    out = {}
    settings = getattr(estimator, "settings_", None)
    if settings is not None:
        keys = ("preset", "time_budget", "hidden_layers", "pretrain_epochs",
                "pretrain_batch_size", "epochs", "batch_size", "optimizer", "learning_rate",
                "dropout", "input_dropout", "lr_schedule", "early_stopping")  # fmt: skip
        out["settings"] = {k: _json_value(settings[k]) for k in keys}
    pretrained = getattr(estimator, "pretrain_history_", None)
    if pretrained is not None and getattr(estimator, "history_", None) is not None:
        out["epochs_run"] = {  # a time budget re-plans the settings' epochs
            "pretraining": [len(h) for h in pretrained],
            "fine_tuning": len(estimator.history_),
        }
    best = getattr(estimator, "best_epoch_", None)
    if best:
        scores = estimator.validation_history_[best - 1]
        out["early_stopping"] = {
            "best_epoch": int(best),
            "epochs_run": len(estimator.validation_history_),
            **{k[4:]: float(v) for k, v in scores.items() if k.startswith("val_")},
        }
    return out


def _card(task, estimator, spec, data, n_train, n_held_out, seconds, metrics) -> dict:
    """The model card's body (:func:`deepbelief.model_dir.save_model` adds the header)."""
    return {
        "task": task,
        "model": estimator_kind(estimator),
        "input": spec_to_card(spec),
        "data": str(data),
        "rows": {"train": int(n_train), "held_out": int(n_held_out)},
        "train_seconds": round(seconds, 3),
        "metrics": metrics,
    }


def _run_settings(args):
    """The model directory and the run's settings: from the command line or, with
    ``--resume``, read back from ``run.json``. Writes nothing."""
    if args.resume is not None:
        directory = args.resume
        check_input_path(directory, "--resume")
        if not directory.is_dir():
            raise ModelFileError(f"{directory}: no such model directory to resume")
        stored = {**RUN_ADDED, **read_json(directory / RUN_FILE)}
        if _finished(directory):
            raise UsageError(
                f"{directory}: its run finished (the model was written): nothing to resume; to "
                f"train it again, give DATA and -o {directory} --overwrite"
            )
        missing = [k for k in RUN_KEYS if k not in stored]
        if missing:
            raise ModelFileError(f"{directory / RUN_FILE}: missing setting(s) {missing}")
        return directory, argparse.Namespace(**{k: stored[k] for k in RUN_KEYS})
    if args.data is None or args.output is None:
        raise UsageError("deepbelief train: give DATA and -o MODEL_DIR (or --resume MODEL_DIR)")
    check_input_path(args.data, "DATA")
    stored = {k: getattr(args, k) for k in RUN_KEYS}
    stored["data"] = str(Path(args.data).resolve())
    stored["labels"] = None if args.labels is None else str(Path(args.labels).resolve())
    return args.output, argparse.Namespace(**stored)


def _finished(directory: Path) -> bool:
    """Whether the run in the folder's ``run.json`` ended (it says so once its model is
    written) with no checkpoint of a later run beside it."""
    if (directory / CHECKPOINT_FILE).exists():
        return False
    return read_json(directory / RUN_FILE).get("finished") is True


def _stored_settings(settings) -> dict:
    return {k: getattr(settings, k) for k in RUN_KEYS}


# ---------------------------------------------------------------------- checks before work
# estimator parameter -> the option that sets it, for messages
OPTION_OF = {
    "hidden_layers": "--layers", "conv_layers": "--conv", "image_shape": "--conv",
    "visible": "--visible", "hidden": "--hidden",
    "pretrain_epochs": "--pretrain-epochs", "pretrain_learning_rate": "--pretrain-lr",
    "pretrain_batch_size": "--pretrain-batch-size", "sampler": "--sampler", "k": "--k",
    "centering": "--centering", "pretrain_dropout": "--pretrain-dropout",
    "random_state": "--seed", "device": "--device",
    "epochs": "--epochs", "batch_size": "--batch-size", "optimizer": "--optimizer",
    "learning_rate": "--lr", "momentum": "--momentum", "weight_decay": "--weight-decay",
    "dropout": "--dropout", "input_dropout": "--input-dropout", "max_norm": "--max-norm",
    "lr_schedule": "--lr-schedule", "early_stopping": "--early-stopping",
    "average_epochs": "--average-epochs", "mixed_precision": "--mixed-precision",
    "up_down_epochs": "--up-down-epochs", "checkpoint_every": "--checkpoint-every",
    "label_training": "--label-training",
    "preset": "--preset", "time_budget": "--time-budget",
    # the generative label model's backprop through its recognition path
    "finetune_epochs": "--epochs", "finetune_learning_rate": "--lr",
    "finetune_dropout": "--dropout", "finetune_input_dropout": "--input-dropout",
    "finetune_shift": "--shift", "shift": "--shift",
}  # fmt: skip
_PARAMETER = re.compile(
    r"(?<![\w-])(" + "|".join(sorted(OPTION_OF, key=len, reverse=True)) + r")(?!\w)"
)


def cli_message(message: str) -> str:
    """An estimator's message with its parameter names as the command's option names
    (``momentum must lie in [0, 1)`` -> ``--momentum must lie in [0, 1)``): the leading
    word and quoted names are translated, prose is left alone."""
    message = re.sub(r"(['`])(\w+)\1", lambda m: OPTION_OF.get(m[2], m[0]), message)
    match = _PARAMETER.match(message)
    if match:
        message = OPTION_OF[match[1]] + message[match.end() :]
    return message


def _check_estimator(estimator) -> None:
    """The estimator's own parameter checks (without data), in the command's words."""
    check = getattr(estimator, "_check_params", None)
    if check is None:
        return
    try:
        check()
    except (TypeError, ValueError) as exc:
        raise UsageError(cli_message(str(exc))) from None


def _validate_settings(settings) -> None:
    """Every training option, before any data is read: combinations, the device, the
    estimator's parameter checks (with placeholder visible units) and the memory the layers
    need at the least."""
    if settings.early_stopping and settings.average_epochs:
        raise UsageError("--average-epochs and --early-stopping exclude each other")
    for option in ("label_training", "shift"):
        if getattr(settings, option) is not None and settings.model != "generative":
            raise UsageError(f"{OPTION_OF[option]} needs --model generative")
    if settings.up_down_epochs and settings.model in ("classifier", "regressor"):
        _refuse_up_down(f"--model {settings.model} is fine-tuned")
    if settings.model == "generative" and settings.up_down_epochs and len(_layers(settings)) < 2:
        raise UsageError(
            "--up-down-epochs needs at least two --layers (one is the classification RBM)"
        )
    check_device(settings.device)
    for task in ("classification", "regression", "unsupervised"):
        _check_estimator(_estimator(settings, task, None, verbose=0))
    check_training_memory(_layers(settings), None, None)


def _layers(settings) -> list[int]:
    """The hidden layer sizes the run will use: ``--layers``, else the preset's, else the
    estimators' default."""
    if settings.layers:
        return list(settings.layers)
    from .recipes import PRESETS

    return list(PRESETS.get(settings.preset, {}).get("hidden_layers", (256, 256)))


def _load(settings, path: Path) -> Dataset:
    labels = getattr(settings, "labels", None)
    size = getattr(settings, "image_size", None)
    if size is not None and Path(path).is_dir():
        _check_image_memory(Path(path), tuple(size))
    target = getattr(settings, "target", None)
    # --model unsupervised has no target: a table's last column is a feature, unless --target
    # names a column to leave out (it was dropped as the default target without a word)
    unsupervised = getattr(settings, "model", None) == "unsupervised" and target is None
    return load_dataset(
        path,
        target=_target_spec(target),
        no_target=getattr(settings, "no_target", False) or unsupervised,
        header=not settings.no_header,
        image_size=None if size is None else tuple(size),
        labels_path=None if labels is None else Path(labels),
    )


def _check_image_memory(folder: Path, size: tuple[int, int]) -> None:
    """Refuse, before reading any, images that ``--image-size`` makes larger than memory."""
    try:
        n = len(image_files(folder))
    except DataError:
        return  # the reader names the problem
    height, width = size
    check_memory(3 * 4 * n * height * width, f"--image-size {height}x{width} on {n} images")


def _target_spec(target):
    """``--target``: a column name, or a position such as ``0`` or ``-1``."""
    if target is None:
        return None
    try:
        return int(target)
    except ValueError:
        return target


def _target(dataset: Dataset, settings):
    """``(task, y)``: the task (``"unsupervised"`` without a target) and the target values."""
    if dataset.target is None or settings.no_target:
        if settings.model in ("classifier", "regressor", "generative"):
            raise UsageError(f"--model {settings.model} needs a target; {dataset.source} has none")
        return "unsupervised", None
    import pandas as pd

    target = dataset.target
    if not isinstance(target, pd.Series):
        target = pd.Series(np.asarray(target).ravel(), name=None)
    y, task = prepare_target(target, settings.task, dataset.source, settings.non_numeric)
    wanted = {"classifier": "classification", "generative": "classification"}
    wanted["regressor"] = "regression"
    if settings.model in wanted and wanted[settings.model] != task:
        raise UsageError(
            f"--model {settings.model} needs a {wanted[settings.model]} target, but the target "
            f"of {dataset.source} is {task} (use --task to override)"
        )
    if settings.model == "unsupervised":
        return "unsupervised", None
    return task, np.asarray(y)


def _split(n: int, y, task: str, settings):
    """Training rows and held-out rows (stratified for classes; seeded)."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(n)
    fraction = settings.validation_split
    if fraction == 0 or n < 10:
        return rows, rows[:0]
    stratify = y if task == "classification" and _stratifiable(y, fraction, n) else None
    held_out = math.ceil(fraction * n)  # as scikit-learn's train_test_split counts
    if held_out >= n:
        raise UsageError(
            f"--validation-split {fraction:g} of {n} rows holds out {held_out}: leave at least "
            "one row to score and one to train on"
        )
    train_rows, held = train_test_split(
        rows, test_size=fraction, random_state=settings.seed, stratify=stratify
    )
    return np.sort(train_rows), np.sort(held)


def _stratifiable(y, fraction, n) -> bool:
    _, counts = np.unique(y, return_counts=True)
    return counts.min() >= 2 and round(fraction * n) >= len(counts)


def _estimator(settings, task: str, spec: InputSpec, verbose: int):
    """The estimator the options ask for; an option not given leaves the estimator's own
    default ("auto": chosen from the data's size or the preset)."""
    from .dbn_estimators import DBN, DBNClassifier, DBNRegressor

    common = _given(
        hidden_layers=None if not settings.layers else tuple(settings.layers),
        pretrain_epochs=settings.pretrain_epochs,
        pretrain_batch_size=settings.pretrain_batch_size,
    )
    common.update(
        visible=_visible_units(spec)
        if spec is not None
        else ("gaussian" if settings.visible == "gaussian" else "bernoulli"),  # a placeholder
        hidden=settings.hidden,
        pretrain_learning_rate=settings.pretrain_lr or "auto",
        sampler=settings.sampler,
        k=settings.k,
        centering=settings.centering,
        pretrain_dropout=settings.pretrain_dropout,
        random_state=settings.seed,
        device=settings.device,
        verbose=verbose,
    )
    if task == "unsupervised" or settings.model == "generative":
        if settings.conv and (spec is not None or settings.model == "generative"):
            raise UsageError(
                "--conv needs a classifier or regressor: give the data a target (not "
                "--no-target or --model generative)"
            )
        generative = settings.model == "generative"
        label_training = settings.label_training if generative else None
        finetune = _given(
            finetune_epochs=settings.epochs, finetune_learning_rate=settings.lr,
            finetune_dropout=settings.dropout, finetune_input_dropout=settings.input_dropout,
            finetune_shift=settings.shift, time_budget=settings.time_budget,
        ) if generative else {}  # fmt: skip
        if generative and spec is not None and spec.image_shape:
            finetune["image_shape"] = tuple(spec.image_shape)
        preset = _generative_preset(settings) if generative else {}
        given = _given(label_training=label_training, up_down_epochs=settings.up_down_epochs)
        return DBN(**{**preset, **common, **given, **finetune})
    if settings.early_stopping and settings.average_epochs:
        raise UsageError("--average-epochs and --early-stopping exclude each other")
    cls = DBNClassifier if task == "classification" else DBNRegressor
    precision = {None: None, "auto": "auto", "on": True, "off": False}[settings.mixed_precision]
    return cls(
        **common,
        **_given(
            epochs=settings.epochs,
            batch_size=settings.batch_size,
            dropout=settings.dropout,
            input_dropout=settings.input_dropout,
            lr_schedule=settings.lr_schedule,
            early_stopping=settings.early_stopping,
        ),
        optimizer=settings.optimizer,
        learning_rate=settings.lr or "auto",
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
        max_norm=settings.max_norm,
        average_epochs=settings.average_epochs,
        mixed_precision=precision,
        preset=settings.preset,
        time_budget=settings.time_budget,
        conv_layers=None if not settings.conv else [tuple(c) for c in settings.conv],
        image_shape=tuple(spec.image_shape) if spec is not None and spec.image_shape else None,
    )


def _generative_preset(settings) -> dict:
    """``--preset``'s parameters for ``--model generative`` (the options given override them:
    the caller passes them after)."""
    from .recipes import GENERATIVE_PRESETS

    if settings.preset is None:
        return {}
    if settings.preset not in GENERATIVE_PRESETS:
        known = ", ".join(sorted(GENERATIVE_PRESETS))
        raise UsageError(f"--preset {settings.preset} has no generative model (known: {known})")
    return dict(GENERATIVE_PRESETS[settings.preset])


def _given(**options) -> dict:
    """The options that were given (not None)."""
    return {k: v for k, v in options.items() if v is not None}


def _visible_units(spec: InputSpec):
    """Visible units for the preprocessed table: one softmax group per categorical column,
    Bernoulli (min-max scaled) or Gaussian (standardised) units for the numeric ones, and
    Bernoulli units for binary ones (0 and 1 among standardised columns)."""
    from .nn.units import MixedUnits, SoftmaxUnits, units_from_spec

    preprocessing = spec.preprocessing
    numeric = "gaussian" if preprocessing.scaling == "standard" else "bernoulli"
    units = {"numeric": numeric, "binary": "bernoulli"}
    blocks = preprocessing.blocks()
    if len({units.get(kind) for kind, _ in blocks}) == 1 and blocks[0][0] in units:
        return units[blocks[0][0]]
    parts = [
        (units_from_spec(units[kind]) if kind in units else SoftmaxUnits([width]), width)
        for kind, width in blocks
    ]
    return MixedUnits(parts)


def estimator_kind(estimator) -> str:
    """``"classifier"``, ``"regressor"``, ``"generative"`` or ``"unsupervised"``."""
    name = type(estimator).__name__
    if name == "DBNClassifier":
        return "classifier"
    if name == "DBNRegressor":
        return "regressor"
    return "generative" if getattr(estimator, "classes_", None) is not None else "unsupervised"


def _report_training(args, directory: Path, estimator, card: dict) -> int:
    """``deepbelief: wrote model to model/ (DBNClassifier 6-16-2, 1.2 s; validation accuracy
    0.9312)``, or with ``--json`` the model card."""
    held_out = _headline(card["metrics"], "validation")
    stopping = card.get("early_stopping")
    if held_out is None and stopping:
        best = _headline(stopping, "early-stopping validation")
        held_out = f"{best} at epoch {stopping['best_epoch']}, then refit on all rows"
    held_out = held_out or "no validation rows"
    resumed = "resumed the interrupted run and " if args.resume is not None else ""
    message = (
        f"{resumed}wrote model to {_folder(directory)} ({architecture(estimator)}, "
        f"{card['train_seconds']:.1f} s; {held_out}{_dropped(card)})"
    )
    return finish(args, message, {"model_dir": str(directory), **card})


def _dropped(card: dict) -> str:
    """``"; --drop-ids dropped 'id'"``: what ``--drop-ids`` left out of a table, or that it
    found no identifier column; empty without the option."""
    preprocessor = card["input"].get("preprocessor") or {}
    if not preprocessor.get("drop_ids"):
        return ""
    dropped = preprocessor.get("dropped", [])
    if not dropped:
        return "; --drop-ids found no identifier column"
    return f"; --drop-ids dropped {', '.join(repr(name) for name in dropped)}"


# ====================================================================== scoring
def score(estimator, task: str, X: np.ndarray, y, source: str = "data") -> dict:
    """Metrics of ``estimator`` on ``(X, y)``: accuracy, f1_macro, log_loss and the confusion
    matrix for classes; r2 and rmse for targets; reconstruction error and free energies for
    unsupervised models."""
    from sklearn import metrics

    kind = estimator_kind(estimator)
    if task == "classification" and kind in ("classifier", "generative"):
        if y is None:
            raise DataError("scoring a classifier needs the target values")
        classes = list(estimator.classes_)
        _check_no_missing_target(y, source)
        codes = label_codes(y, estimator.classes_, source)  # by value: 2.0 is the label 2
        proba = np.clip(estimator.predict_proba(X), 1e-15, 1.0)
        predicted = proba.argmax(1)
        return {
            "accuracy": float(np.mean(predicted == codes)),
            "f1_macro": float(metrics.f1_score(codes, predicted, average="macro")),
            "log_loss": float(metrics.log_loss(codes, proba, labels=range(len(classes)))),
            "classes": [_json_value(c) for c in classes],  # as predict --json gives them
            "confusion_matrix": metrics.confusion_matrix(
                codes, predicted, labels=range(len(classes))
            ).tolist(),
            "rows": int(len(predicted)),
        }
    if task == "regression":
        return regression_metrics(*regression_pairs(estimator, X, y, source))
    return _unsupervised_scores(estimator, X)


def regression_metrics(truth: np.ndarray, predicted: np.ndarray) -> dict:
    """r2, rmse and the row count of a regressor's predictions."""
    from sklearn import metrics

    return {
        "r2": float(metrics.r2_score(truth, predicted)),
        "rmse": float(np.sqrt(np.mean((truth - predicted) ** 2))),
        "rows": int(len(truth)),
    }


def regression_pairs(estimator, X, y, source: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """A regressor's true and predicted values on ``(X, y)``, as float arrays of one shape."""
    if y is None:
        raise DataError("scoring a regressor needs the target values")
    truth = _numeric_targets(y, source)
    predicted = np.asarray(estimator.predict(X), dtype=np.float64)
    return truth.reshape(predicted.shape), predicted


def _check_no_missing_target(y, source: str):
    """The target cells as a DataFrame (one column per target); DataError naming the first
    row (counted from 1) whose target is missing."""
    import pandas as pd

    cells = pd.DataFrame(np.asarray(y, dtype=object).reshape(len(y), -1))
    missing = cells.isna().to_numpy()
    if missing.any():
        row = int(np.argwhere(missing)[0][0])
        raise DataError(
            f"{source}: target row {row + 1}: missing (in {int(missing.any(1).sum())} of "
            f"{len(missing)} rows); scoring needs the target of every row"
        )
    return cells


def _numeric_targets(y, source: str) -> np.ndarray:
    """A regressor's targets as floats; DataError naming the first cell (rows counted from 1)
    that is missing, no number or infinite."""
    import pandas as pd

    cells = _check_no_missing_target(y, source)
    values = cells.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{source}: target row {row + 1}: {_show_cell(cells.iat[row, column])} is not a "
            "finite number; scoring a regressor needs a number in every target cell"
        )
    return values.reshape(np.shape(y))


def _show_cell(value) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _unsupervised_scores(estimator, X) -> dict:
    """Reconstruction error and the first RBM's free energies of the rows of ``X`` (an array,
    or a RowFile read a block at a time)."""
    import torch

    first = estimator._exact().rbms[0]
    squares, free = 0.0, []
    for block in (rows.numpy() for rows in X.chunks()) if is_row_file(X) else [X]:
        squares += float(np.sum((estimator.reconstruct(block) - block) ** 2))
        with torch.no_grad():
            v = estimator._prepare(np.asarray(block)).to(torch.float64)
            free.append(first.free_energy(v).cpu().numpy())
    free = np.concatenate(free)
    return {
        "reconstruction_error": squares / max(1, len(X) * X.shape[1]),
        "free_energy_mean": float(free.mean()),
        "free_energy_std": float(free.std()),
        "rows": int(len(X)),
    }


# ====================================================================== predict / evaluate
def _warn_blank_rows(empty: np.ndarray, width: int, source: str, outcome: str) -> None:
    """A warning naming the rows with no values (``empty`` cells of ``width``) and what the
    command made of them (``outcome``)."""
    blank = np.flatnonzero(empty == width)
    if len(blank):
        warn(
            f"{source}: {len(blank)} row(s) with no values (the first: row {blank[0] + 1}): "
            f"{outcome}",
            DataWarning,
        )


def _check_predict(estimator, model: Path, proba: bool) -> None:
    """What ``predict`` refuses before the data is read."""
    if estimator_kind(estimator) == "unsupervised":
        raise UsageError(f"{model}: an unsupervised model has nothing to predict")
    if proba and estimator_kind(estimator) == "regressor":
        raise UsageError("--proba needs a classification model")


def _check_log_likelihood(estimator, model: Path) -> None:
    """``--log-likelihood`` needs a generative model: refused before the data is read."""
    if estimator_kind(estimator) not in ("generative", "unsupervised"):
        raise UsageError(
            f"{model}: --log-likelihood needs a generative or unsupervised model; fine-tuning "
            "turned this one into a discriminative network"
        )


def _model_and_rows(
    args, need_target: bool = False, check_model=None, loaded=None, unseen: str = "error"
):
    """The model, its card and input spec, the rows of ``args.data``, their target and the
    dataset they were read from (:class:`~deepbelief.data.Dataset`: its ``row_names``, an image
    folder's files, else None); ``check_model(estimator, path)`` runs before
    the data is read. ``loaded``: the model's :func:`load_model`, when read already;
    ``unseen``: what a category not seen in training does (``"error"`` or ``"empty"``)."""
    check_input_path(args.model, "MODEL")
    check_input_path(args.data, "DATA")
    estimator, card, spec = loaded or load_model(args.model)
    if check_model is not None:
        check_model(estimator, args.model)
    image_size = args.image_size
    if (
        image_size is None
        and spec.kind == "images"
        and spec.image_shape
        and Path(args.data).is_dir()
    ):
        image_size = list(spec.image_shape)  # a folder's images at the size the model takes
    settings = argparse.Namespace(  # a table's target column is found by its name
        no_header=args.no_header,
        labels=args.labels,
        image_size=image_size,
        no_target=spec.kind == "table" or _table_for_rows(spec, Path(args.data)),
    )
    dataset = _load(settings, args.data)
    X, target = spec.features(dataset, unseen)
    if need_target and target is None and card["task"] != "unsupervised":
        what = f"target column {spec.target!r}" if spec.target else "target values"
        raise DataError(f"{args.data}: has no {what} to evaluate against")
    return estimator, card, spec, X, target, dataset


def _table_for_rows(spec, path: Path) -> bool:
    """Whether ``path`` is a table given to a model trained on arrays of rows: every column
    is then a feature, as in those rows (an array's labels come in a file of their own)."""
    return spec.kind == "array" and file_kind(path) == "table"


def predict(args) -> int:
    """``deepbelief predict MODEL DATA [-o OUT] [--proba] [--json]``: CSV (a column named as
    the target, then ``p(CLASS)`` columns with ``--proba``), or with ``--json`` one JSON
    object (:func:`predictions_json`)."""

    args.output = output_file(args.output, (args.model, args.data, getattr(args, "labels", None)))
    allowed = (".json", ".txt", "") if args.json else (".csv", ".txt", "")
    if args.output is not None and args.output.suffix.lower() not in allowed:
        what = "JSON" if args.json else "CSV"
        raise UsageError(
            f"{args.output}: predictions are written as {what}; name a .{what.lower()} file"
        )
    estimator, card, spec, X, _, dataset = _model_and_rows(
        args, check_model=lambda estimator, model: _check_predict(estimator, model, args.proba)
    )
    column = spec.target or "prediction"
    filled = "predicted from the values filled in as in training, not from data"
    _warn_blank_rows(spec.empty_cells(dataset), len(spec.feature_names), str(args.data), filled)
    predicted = estimator.predict(X)
    proba = estimator.predict_proba(X) if args.proba else None
    if args.json:
        names = dataset.row_names
        document = predictions_json(column, predicted, estimator, card["task"], proba, names)
        _write_text(json.dumps(document) + "\n", args.output)
    else:
        table = _named_rows(dataset.row_names, {column: _plain(predicted)})
        if proba is not None:
            for i, c in enumerate(estimator.classes_):
                table[f"p({c})"] = proba[:, i]
        _write_table(table, args.output)
    extra = " with class probabilities" if proba is not None else ""
    form = "JSON" if args.json else "CSV"
    noun = "prediction" if len(predicted) == 1 else "predictions"
    of = f" of {column}" if spec.target else ""  # (a model of images or arrays: no name)
    message = f"wrote {len(predicted)} {noun}{of}{extra} as {form} to "
    if args.json and args.output is None:
        return 0  # the JSON on standard output says it all
    return finish(args, message + _where(args.output))


def predictions_json(column: str, predicted, estimator, task: str, proba=None, names=None) -> dict:
    """``predict --json``: ``{"target": COLUMN, "classes": [...], "files": [...],
    "predictions": [...], "probabilities": [{CLASS: P, ...}, ...]}``, one entry per row in
    the rows' order; ``classes`` for classification, ``files`` for an image folder (each
    image's path in it), ``probabilities`` with ``--proba``; a multi-output regressor's
    predictions are lists. Values are JSON numbers or strings (non-finite numbers are null);
    a class's key is its text."""
    document = {"target": column, "rows": len(predicted)}
    if task == "classification":
        document["classes"] = [_json_value(c) for c in estimator.classes_]
    if names is not None:
        document["files"] = list(names)
    document["predictions"] = [_json_value(v) for v in _plain(predicted)]
    if proba is not None:
        names = [str(c) for c in estimator.classes_]
        document["probabilities"] = [
            dict(zip(names, map(float, row), strict=True)) for row in np.asarray(proba)
        ]
    return document


def _json_value(value):
    """A prediction or class as JSON: numpy scalars and arrays as Python values, non-finite
    numbers as None."""
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: The first column of per-row output from an image folder: each image's path in it.
FILE_COLUMN = "file"


def _named_rows(names, columns: dict):
    """A DataFrame of ``columns``, after a ``file`` column of the rows' ``names`` (an image
    folder's files) when there are names."""
    import pandas as pd

    table = pd.DataFrame(columns)
    if names is not None:
        table.insert(0, FILE_COLUMN, list(names))
    return table


def _plain(values):
    values = np.asarray(values)
    return values.ravel() if values.ndim == 2 and values.shape[1] == 1 else list(values)


def _write_table(table, path: Path | None) -> None:
    buffer = io.StringIO()
    table.to_csv(buffer, index=False, quoting=_quoting(table))
    _write_text(buffer.getvalue(), path)


def _quoting(table) -> int:
    """pandas quotes text holding a comma, a quote or a newline, but not a lone carriage
    return (a file name may hold one), which CSV readers take for a line end: then every
    text cell is quoted."""
    import csv

    import pandas as pd

    for column in table.columns:
        values = table[column]
        if (
            pd.api.types.is_string_dtype(values.dtype)
            and values.map(lambda v: isinstance(v, str) and "\r" in v).any()
        ):
            return csv.QUOTE_NONNUMERIC
    return csv.QUOTE_MINIMAL


def _write_text(text: str, path: Path | None) -> None:
    """``text`` to standard output (``path`` None or ``-``) or atomically to ``path``, as
    UTF-8; file names that are not UTF-8 (Python's surrogate escapes) keep their own bytes."""
    if path is None or str(path) == "-":
        _write_stdout(text)
        return
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def _write_stdout(text: str) -> None:
    """``text`` on standard output, written to its file descriptor until every byte is out:
    a reader that goes away (``| head``) raises BrokenPipeError at the next write (Python's
    buffered stream lost that error on one large write whose first part the pipe took)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no descriptor: a test's capture
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    data = memoryview(text.encode(sys.stdout.encoding or "utf-8", "surrogateescape"))
    sys.stdout.flush()  # what was printed before comes first
    while data:
        data = data[os.write(fd, data) :]


def evaluate(args) -> int:
    """``deepbelief evaluate MODEL DATA [--json] [--log-likelihood]`` (with
    ``--log-likelihood``, rows without their target get the bound alone)."""
    estimator, card, _, X, target, _ = _model_and_rows(
        args,
        need_target=not args.log_likelihood,
        check_model=_check_log_likelihood if args.log_likelihood else None,
    )
    task = card["task"]
    y = None if target is None else np.asarray(target)
    results = (
        {} if y is None and args.log_likelihood else score(estimator, task, X, y, str(args.data))
    )
    if args.log_likelihood:
        results["log_likelihood_bound"] = float(estimator.log_likelihood_bound(X))
    if args.json:
        print_json(results)
        return 0
    _print_metrics(results)
    rows = results.get("rows", len(X))
    message = f"scored {args.model} on {args.data} ({rows} rows)"
    headline = _headline(results, "")
    return finish(args, message + (f":{headline}" if headline else ""))


def _print_metrics(results: dict) -> None:
    for name, value in results.items():
        if name == "confusion_matrix":
            print("confusion matrix (rows: true class, columns: predicted):")
            labels = [str(c) for c in results["classes"]]
            width = max(5, *(len(label) for label in labels))
            print(f"  {'':>10} " + " ".join(f"{label:>{width}}" for label in labels))
            for label, row in zip(labels, value):
                print(f"  {label:>10} " + " ".join(f"{v:{width}d}" for v in row))
        elif name != "classes":
            print(f"{name}: {value:.6g}" if isinstance(value, float) else f"{name}: {value}")


# ====================================================================== sample / transform
def sample(args) -> int:
    """``deepbelief sample MODEL -n N [--label C] [--gibbs-steps K] -o OUT``."""
    stdout = output_file(args.output, (args.model,)) is None
    suffix = ".csv" if stdout else args.output.suffix.lower()
    if suffix not in (".png", ".csv", ".npy"):
        raise UsageError(f"{args.output}: sample output must be .png, .csv, .npy or -")
    check_input_path(args.model, "MODEL")
    estimator, _, spec = load_model(args.model)
    kind = estimator_kind(estimator)
    if kind not in ("generative", "unsupervised"):
        raise UsageError(
            f"{args.model}: a {kind} does not sample; train with --model generative (by class) "
            "or --model unsupervised"
        )
    if suffix == ".png" and not spec.picture_shape:
        raise UsageError(f"{args.output}: PNG needs image data; write .csv or .npy instead")
    check_rows_fit(args.output, spec)
    by_class = kind == "generative" and args.label is None and suffix == ".png"
    draws = args.n * (len(estimator.classes_) if by_class else 1)
    check_memory(sampling_memory(estimator, draws), f"-n {args.n} samples")
    if by_class:
        labels = _class_samples_grid(estimator, spec, args.n, args.gibbs_steps, args.output)
        message = f"wrote {draws} samples ({args.n} of each of {len(labels)} classes) to "
        payload = {"output": str(args.output), "samples": draws, "per_class": args.n,
                   "classes": [_json_value(c) for c in labels]}  # fmt: skip
        return finish(args, message + _where(args.output), payload)
    label = _label(estimator, args.label) if args.label is not None else None
    class_column = None
    if kind == "generative" and suffix == ".csv":  # each row's class in a column of its own
        drawn, classes = estimator.sample(args.n, label=label, gibbs_steps=args.gibbs_steps,
                                          return_labels=True)  # fmt: skip
        samples = spec.restore(drawn)
        columns = int(np.shape(samples)[1])
        samples = _with_class(samples, classes, spec.target or "label")
        class_column = str(samples.columns[-1])
    else:
        samples = spec.restore(estimator.sample(args.n, label=label, gibbs_steps=args.gibbs_steps))
        columns = int(np.shape(samples)[1]) if np.ndim(samples) == 2 else None
    _write_rows(samples, args.output, spec)
    of_class = "" if label is None else f" of class {label}"
    shape = f" ({columns} columns)" if columns is not None and suffix != ".png" else ""
    if class_column is not None:
        shape = f" ({columns} columns and their class, {class_column!r})"
    message = f"wrote {args.n} samples{of_class}{shape} to {_where(args.output)}"
    payload = {"output": str(args.output), "samples": args.n, "columns": columns,
               "label": None if label is None else str(label)}  # fmt: skip
    if class_column is not None:
        payload["class_column"] = class_column
    return finish(args, message, None if stdout else payload)


def _with_class(rows, classes, name: str):
    """``rows`` (a table, or an array of rows) as a table with a last column ``name`` of
    ``classes`` (``name`` made unique when a feature column has it)."""
    import pandas as pd

    table = rows.copy() if _is_frame(rows) else pd.DataFrame(np.asarray(rows))
    table.columns = [str(c) for c in table.columns]
    while name in table.columns:
        name = f"{name}_"
    table[name] = classes
    return table


def _label(estimator, text: str):
    classes = getattr(estimator, "classes_", None)
    if classes is None:
        raise UsageError("--label needs a model trained with --model generative")
    try:  # by value, as train and evaluate match labels: 2.0 is the label 2
        return classes[label_codes([text], classes)[0]]
    except DataError:
        pass
    raise UsageError(f"unknown --label {text!r}; the classes are {', '.join(map(str, classes))}")


def check_rows_fit(path, spec: InputSpec) -> None:
    """UsageError, before any work, when ``path`` is a ``.npy`` file and the model's rows
    have categorical (text) columns, which an array of numbers cannot hold."""
    if output_file(path) is None or path.suffix.lower() != ".npy":
        return
    text = [c["name"] for c in spec.preprocessor["columns"] if c["kind"] == "categorical"]
    if text:
        raise UsageError(
            f"{path}: a .npy file holds numbers only, but the model's rows have text column(s) "
            f"{', '.join(map(repr, text[:5]))}{' ...' if len(text) > 5 else ''}; write .csv "
            "(or - for CSV on standard output)"
        )


def _write_rows(rows, path: Path, spec: InputSpec, names=None) -> None:
    """``rows`` as a PNG grid, a ``.npy`` array or CSV (``-``: standard output); in CSV after
    a ``file`` column of the rows' ``names`` (an image folder's files) when there are names."""
    import pandas as pd

    suffix = ".csv" if str(path) == "-" else path.suffix.lower()
    if suffix == ".png":
        from .plots import save_image_grid, tile_images

        save_image_grid(tile_images(np.asarray(rows), spec.picture_shape), path)
    elif suffix == ".npy":
        if _is_frame(rows) and any(_holds_text(rows[c]) for c in rows.columns):
            raise UsageError(f"{path}: categorical columns do not fit a .npy file; write .csv")
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(rows, dtype=np.float64), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
    elif suffix == ".csv":
        table = rows if _is_frame(rows) else pd.DataFrame(np.asarray(rows))
        _write_table(_named_rows(names, table), path)
    else:
        raise UsageError(f"{path}: output must be .csv or .npy")


def _is_frame(value) -> bool:
    return hasattr(value, "to_csv")


def _holds_text(column) -> bool:
    """Whether a column holds text or other objects (pandas' object or string dtypes, or
    categories), which a .npy file of numbers cannot hold."""
    import pandas as pd

    types = pd.api.types
    return (
        types.is_object_dtype(column)
        or types.is_string_dtype(column)
        or isinstance(column.dtype, pd.CategoricalDtype)
    )


def transform(args) -> int:
    """``deepbelief transform MODEL DATA -o OUT``: the top layer's features."""
    written = output_file(args.output, (args.model, args.data, getattr(args, "labels", None)))
    if written is not None and args.output.suffix.lower() not in (".csv", ".npy"):
        raise UsageError(f"{args.output}: features go to a .csv or .npy file (or - for CSV)")
    loaded = None
    if holds_rows(args.data):  # a .npy file or shards: read a block at a time when it can be
        check_input_path(args.model, "MODEL")
        loaded = load_model(args.model)
        if loaded[2].kind == "array":
            rows, width = _transform_rows(args, loaded[0], loaded[2], written)
            return _transformed(args, rows, width)
    estimator, _, _, X, _, dataset = _model_and_rows(args, loaded=loaded)
    features = _features(estimator, X)
    import pandas as pd

    table = pd.DataFrame(features, columns=[f"h{i}" for i in range(features.shape[1])])
    _write_rows(table, args.output, None, dataset.row_names)
    return _transformed(args, *features.shape)


def _transformed(args, rows: int, width: int) -> int:
    message = f"wrote {rows} rows of {width} features to {_where(args.output)}"
    payload = {"output": str(args.output), "rows": int(rows), "features": int(width)}
    return finish(args, message, None if str(args.output) == "-" else payload)


def _features(estimator, X) -> np.ndarray:
    """The top hidden layer's means of model-ready rows ``X`` (float64)."""
    if estimator_kind(estimator) in ("classifier", "regressor"):
        import torch

        with torch.no_grad():
            X = estimator.dbn_.transform(estimator._prepare(X)).cpu().numpy()
        return np.asarray(X, dtype=np.float64)
    return np.asarray(estimator.transform(X), dtype=np.float64)


def _transform_rows(args, estimator, spec, output) -> tuple[int, int]:
    """:func:`transform` of a ``.npy`` file or folder of shards a block at a time, written a
    block at a time (memory flat in the number of rows, as training's); ``(rows, width)``."""
    import itertools

    import pandas as pd

    source = RowFile(args.data)  # DataError: not numeric rows, shards with other columns
    expected = len(spec.feature_names)
    if source.n_features != expected:
        raise DataError(
            f"{args.data}: {source.n_features} features per row, but the model was trained on "
            f"{expected}"
        )
    if len(source) == 0:
        raise DataError(f"{args.data}: no rows")
    pre, names, step = spec.preprocessing, spec.feature_names, source.chunk_rows
    clipped = [0, None]  # values outside the training range, the first of them

    def blocks():
        for start in range(0, len(source), step):
            block = source.read(start, start + step)
            bad = ~np.isfinite(block)
            if bad.any():
                row, column = (int(i) for i in np.argwhere(bad)[0])
                raise DataError(
                    f"{args.data}: {file_position(start + row, column)} holds "
                    f"{block[row, column]}; remove or impute such values"
                )
            frame = pd.DataFrame(block, columns=names)
            X = pre.transform(frame, str(args.data))
            if spec.preprocessor["scaling"] == "minmax":  # as InputSpec.features clips
                found = spec.outside(frame, first_row=start + 1)
                if found is not None:
                    clipped[0] += found[0]
                    clipped[1] = clipped[1] or found[1]
                X = np.clip(X, 0.0, 1.0)
            yield _features(estimator, X)

    features = blocks()
    first = next(features)
    width, features = first.shape[1], itertools.chain([first], features)
    header = ",".join(f"h{i}" for i in range(width)) + "\n"

    def csv(block) -> str:
        return pd.DataFrame(block).to_csv(header=False, index=False)

    if output is None:  # CSV on standard output
        _write_stdout(header)
        for block in features:
            _write_stdout(csv(block))
    elif output.suffix.lower() == ".npy":
        with atomic_writer(output) as f:
            write_npy(f, features, len(source), width, np.float64)
    else:
        with atomic_writer(output) as f:
            f.write(header.encode())
            for block in features:
                f.write(csv(block).encode())
    spec.warn_found(None if clipped[1] is None else tuple(clipped), str(args.data))
    return len(source), width


# ====================================================================== info / report
def _parts(units) -> list[list]:
    """``[[units, size], ...]``: the blocks of mixed units (a table's Gaussian, Bernoulli and
    softmax columns), consecutive blocks of one type counted together."""
    out: list[list] = []
    for part, size in units.parts:
        if out and out[-1][0] == part.name and part.name != "softmax":
            out[-1][1] += size
        else:
            out.append([part.name, size])
    return out


def _units_text(layer: dict) -> str:
    """``mixed (gaussian 2, bernoulli 1, softmax 3)``, or the units' name."""
    parts = layer.get("visible_parts")
    if not parts:
        return layer["visible_units"]
    return f"{layer['visible_units']} ({', '.join(f'{name} {size}' for name, size in parts)})"


def describe(estimator, card: dict) -> dict:
    """Architecture, units, training history summary and file format of a model."""
    dbn = estimator.dbn_
    layers = [
        {
            "visible": rbm.n_visible,
            "hidden": rbm.n_output,
            "visible_units": rbm.visible.name,
            "hidden_units": rbm.hidden.name,
            **({"visible_parts": _parts(rbm.visible)} if rbm.visible.name == "mixed" else {}),
            **({"conv": rbm.config()} if rbm.config().get("kind") == "conv" else {}),
        }
        for rbm in dbn.rbms
    ]
    pretrain = [
        {"epochs": len(h), **{k: v for k, v in (h[-1] if h else {}).items() if k != "epoch"}}
        for h in getattr(estimator, "pretrain_history_", [])
    ]
    finetune = getattr(estimator, "history_", [])
    summary = {
        "model": card["model"],
        "task": card["task"],
        "layers": layers,
        "classes": _class_names(estimator),
        "pretraining": pretrain,
        "fine_tuning": {"epochs": len(finetune), "last": finetune[-1] if finetune else None},
        **_generative_phases(estimator),
        "input": {
            **{k: card["input"][k] for k in ("kind", "target", "image_shape")},
            **_input_columns(card["input"]),
        },
        "metrics": {k: v for k, v in card.get("metrics", {}).items() if k != "confusion_matrix"},
        "format_version": card["format_version"],
        "package_version": card["package_version"],
    }
    return summary


#: A generative DBN's training after pretraining: (attribute prefix, summary key, words).
GENERATIVE_PHASES = (
    ("label", "label_training", "label training"),
    ("finetune", "recognition_fine_tuning", "fine-tuning of the recognition path"),
    ("up_down", "up_down", "up-down"),
)


def _generative_phases(estimator) -> dict:
    """``{"label_training": {"epochs", "last"}, ...}`` for a generative DBN's phases that
    ran (its ``fine_tuning`` is 0 epochs: they are its training after pretraining)."""
    out = {}
    for prefix, key, _ in GENERATIVE_PHASES:
        history = getattr(estimator, f"{prefix}_history_", None)
        if history:
            out[key] = {"epochs": len(history), "last": history[-1]}
    return out


def _input_columns(spec: dict) -> dict:
    """A table's columns as ``predict`` expects them: ``{"columns": [{"name", "kind"}, ...]}``
    (a categorical column with its ``categories``; the ``--drop-ids`` ones under
    ``"dropped"``); nothing for other inputs."""
    pre = spec.get("preprocessor") or {}
    if spec.get("kind") != "table" or "columns" not in pre:
        return {}
    columns = [
        {"name": c["name"], "kind": c["kind"],
         **({"categories": c["categories"]} if c["kind"] == "categorical" else {})}
        for c in pre["columns"]
    ]  # fmt: skip
    return {"columns": columns, **({"dropped": pre["dropped"]} if pre.get("dropped") else {})}


def _class_names(estimator):
    classes = getattr(estimator, "classes_", None)
    return None if classes is None else [_json_value(c) for c in classes]


def info(args) -> int:
    """``deepbelief info MODEL``."""
    estimator, card, _ = load_model(args.model)
    summary = describe(estimator, card)
    summary["interrupted_run"] = (Path(args.model) / CHECKPOINT_FILE).exists()
    if args.json:
        print_json(summary)
        return 0
    sizes = [summary["layers"][0]["visible"]] + [layer["hidden"] for layer in summary["layers"]]
    print(f"{args.model}: {summary['model']} ({summary['task']})")
    print("  layers: " + "-".join(map(str, sizes)))
    for i, layer in enumerate(summary["layers"]):
        print(f"    RBM {i + 1}: {_units_text(layer)} -> {layer['hidden_units']}"
              + _conv_words(layer.get("conv")))  # fmt: skip
    if "columns" in summary["input"]:
        print("  input columns: " + _columns_text(summary["input"]))
    for i, phase in enumerate(summary["pretraining"]):
        print(f"  pretraining layer {i + 1}: {phase['epochs']} epochs")
    if summary["fine_tuning"]["epochs"]:
        last = summary["fine_tuning"]["last"]
        epochs = summary["fine_tuning"]["epochs"]
        print(f"  fine-tuning: {epochs} epochs, last loss {last['loss']:.4g}")
    for _, key, words in GENERATIVE_PHASES:
        if key in summary:
            print(f"  {words}: {summary[key]['epochs']} epochs")
    for name, value in summary["metrics"].items():
        if isinstance(value, float):
            print(f"  held-out {name}: {value:.4g}")
    version, package = summary["format_version"], summary["package_version"]
    print(f"  model-directory format {version}, deepbelief {package}")
    if summary["interrupted_run"]:  # (an interrupted --overwrite run: it replaces this model)
        print(f"  a run that has not finished left its checkpoint here: `deepbelief train "
              f"--resume {args.model}` continues it, and its model replaces this one")  # fmt: skip
    return finish(args, f"described {args.model} ({architecture(estimator)})")


def _columns_text(spec: dict) -> str:
    """``"a (numeric), colour (categorical: 3 values); target y"``."""
    words = [
        f"{c['name']} ({c['kind']}"
        + (f": {len(c['categories'])} values)" if "categories" in c else ")")
        for c in spec["columns"]
    ]
    shown = ", ".join(words[:12]) + (f", ... ({len(words)} in all)" if len(words) > 12 else "")
    target = f"; target {spec['target']}" if spec.get("target") else ""
    return shown + target


def report(args) -> int:
    """``deepbelief report MODEL -o DIR``: report.html and its PNG plots."""
    if str(args.output) == "-":
        raise UsageError("-o -: a report is a folder (report.html and its plots); name one")
    inputs = (args.model,) if args.data is None else (args.model, args.data, args.labels)
    output_folder(args.output, REPORT_FILES, inputs=inputs)
    if any((args.output / name).exists() for name in (CARD_FILE, MODEL_FILE, CHECKPOINT_FILE)):
        raise UsageError(
            f"{args.output}: holds a model (a later train --overwrite would leave the report "
            "beside another model); give the report a folder of its own"
        )
    _check_report_folder(args.output, args.overwrite)
    check_input_path(args.model, "MODEL")
    estimator, card, spec = loaded = load_model(args.model)
    tested = None if args.data is None else _scored_rows(args, loaded)
    plots: list[Path] = []
    title = f"deepbelief: {args.model}"
    earlier = _written_by_deepbelief(args.output / "report.html")
    path = write_model_report(
        estimator, card, spec, args.output, title=title, plots=plots, tested=tested
    )
    if earlier:  # the earlier report's plots that this model has none of would mislead
        written = {Path(p).name for p in plots} | {path.name}
        for name in REPORT_FILES:
            if name not in written:
                (args.output / name).unlink(missing_ok=True)
    shown = f" with {', '.join(p.name for p in plots)}" if plots else ""
    payload = {"report": str(path), "plots": [str(p) for p in plots]}
    if tested is not None:
        payload["data"] = {"source": tested["source"], "metrics": tested["metrics"]}
    return finish(args, f"wrote report of {args.model} to {path}{shown}", payload)


def _scored_rows(args, loaded) -> dict:
    """The report's rows of ``args.data``: ``{"source", "metrics"}`` (as ``evaluate`` gives
    them) and, for a regressor, ``"actual"`` and ``"predicted"``."""
    estimator, card, _, X, target, _ = _model_and_rows(args, need_target=True, loaded=loaded)
    y, source = (None if target is None else np.asarray(target)), str(args.data)
    if card["task"] != "regression":
        return {"source": source, "metrics": score(estimator, card["task"], X, y, source)}
    actual, predicted = regression_pairs(estimator, X, y, source)  # predicted once
    metrics = regression_metrics(actual, predicted)
    return {"source": source, "metrics": metrics, "actual": actual, "predicted": predicted}


REPORT_FILES = (
    "report.html",
    "learning_curves.png",
    "confusion_matrix.png",
    "data_confusion_matrix.png",
    "predicted_vs_actual.png",
    "filters.png",
    "samples.png",
)


def _check_report_folder(folder: Path, overwrite: bool) -> None:
    """The report's files already in ``folder`` are replaced only when they are an earlier
    report's (its report.html says deepbelief wrote it) or with ``--overwrite``."""
    taken = [name for name in REPORT_FILES if (folder / name).exists()]
    if overwrite or not taken or _written_by_deepbelief(folder / "report.html"):
        return
    raise UsageError(
        f"{folder}: holds {', '.join(taken)}, not an earlier deepbelief report; use another "
        "folder, or --overwrite to replace them"
    )


def _written_by_deepbelief(page: Path) -> bool:
    """Whether ``page`` ends with the footer :func:`deepbelief.report.render_report` writes."""
    try:
        with open(page, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            return b"<footer>Written by deepbelief" in f.read()
    except OSError:
        return False


def write_model_report(
    estimator,
    card,
    spec,
    folder: Path,
    title: str,
    extra=(),
    plots: list | None = None,
    tested: dict | None = None,
) -> Path:
    """Plots and a self-contained HTML page describing a trained model; returns its path.
    ``extra``: more ``(png_path, caption)`` images to show; ``plots``, a list to which the
    paths of the images shown are added; ``tested``, the model scored on rows of a file
    (:func:`_scored_rows`)."""
    from .plots import plot_confusion_matrix, plot_learning_curves
    from .report import write_report

    folder.mkdir(parents=True, exist_ok=True)
    summary = describe(estimator, card)
    sections = [{"heading": "Model", "metrics": _model_facts(summary)}]
    metrics = card.get("metrics") or {}
    if metrics:
        scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        sections.append({"heading": "Held-out metrics", "metrics": scalars})
    if tested is not None:
        scalars = {k: v for k, v in tested["metrics"].items() if isinstance(v, (int, float))}
        sections.append({"heading": f"Metrics on {tested['source']}", "metrics": scalars})
    histories = {
        f"pretrain layer {i + 1}": h
        for i, h in enumerate(getattr(estimator, "pretrain_history_", []))
    }
    if getattr(estimator, "validation_history_", None):  # the epochs the refit took
        histories["early-stopping search"] = estimator.validation_history_
    if getattr(estimator, "history_", None):
        histories["fine-tune"] = estimator.history_
    for prefix, _, words in GENERATIVE_PHASES:
        if getattr(estimator, f"{prefix}_history_", None):
            histories[words] = getattr(estimator, f"{prefix}_history_")
    images = []
    try:
        images.append(
            (plot_learning_curves(histories, folder / "learning_curves.png"), "Learning curves")
        )
    except ValueError:
        pass  # nothing recorded per epoch
    if "confusion_matrix" in metrics:
        matrix = np.asarray(metrics["confusion_matrix"])
        path = plot_confusion_matrix(matrix, metrics["classes"], folder / "confusion_matrix.png")
        images.append((path, "Confusion matrix on the held-out rows"))
    if tested is not None:
        images += _tested_plots(tested, spec, folder)
    if spec.picture_shape:
        images += _first_layer_plots(estimator.dbn_.rbms[0], spec.picture_shape, folder)
        if estimator_kind(estimator) in ("generative", "unsupervised"):
            images.append(_model_samples(estimator, spec, folder / "samples.png"))
    images += list(extra)
    if images:
        sections.append({"heading": "Plots", "images": images})
    if plots is not None:
        plots.extend(Path(path) for path, _ in images)
    return write_report(folder / "report.html", title, sections)


def _tested_plots(tested: dict, spec, folder: Path) -> list:
    """The confusion matrix or the predicted-against-actual plot of the rows of a file."""
    from .plots import plot_confusion_matrix, plot_predicted_vs_actual

    metrics, source = tested["metrics"], tested["source"]
    if "confusion_matrix" in metrics:
        matrix = np.asarray(metrics["confusion_matrix"])
        path = folder / "data_confusion_matrix.png"
        plot_confusion_matrix(matrix, metrics["classes"], path)
        return [(path, f"Confusion matrix on {source}")]
    if "predicted" in tested:
        path = folder / "predicted_vs_actual.png"
        names = [spec.target or "target"] if np.ndim(tested["actual"]) == 1 else None
        plot_predicted_vs_actual(tested["actual"], tested["predicted"], path, names)
        return [(path, f"Predicted against actual values on {source}")]
    return []


def _conv_words(conv: dict | None) -> str:
    """``" (conv: 24 filters of 5x5 on 1x28x28, pool 2)"`` for a conv layer, else ``""``."""
    if not conv:
        return ""
    kernel, image = "x".join(map(str, conv["kernel_size"])), "x".join(map(str, conv["image_shape"]))
    return f" (conv: {conv['n_filters']} filters of {kernel} on {image}, pool {conv['pool']})"


def _first_layer_plots(rbm, image_shape, folder: Path) -> list:
    """The first layer's filters. (Not a conv layer's samples: conv layers belong to
    classifiers and regressors, whose fine-tuning leaves the layer no model of the images;
    its Gibbs chains drew stripes.)"""
    from .plots import plot_filters

    weight = rbm.weight.detach().cpu().numpy()
    if weight.ndim == 4:  # a conv RBM: (filters, channels, height, width), the first channel
        tiles = weight[:, 0].reshape(len(weight), -1).T
        path = plot_filters(tiles, weight.shape[2:], folder / "filters.png")
        return [(path, "First conv layer's filters")]
    if weight.shape[0] != int(np.prod(image_shape)):
        return []
    path = plot_filters(weight, tuple(image_shape), folder / "filters.png")
    return [(path, "First-layer filters")]


#: The report's samples of a generative model: this many of each class (or, without classes,
#: this many squared), each after this many Gibbs steps (``deepbelief sample``'s default).
REPORT_SAMPLES, REPORT_GIBBS_STEPS = 8, 1000


def _model_samples(estimator, spec, path: Path) -> tuple[Path, str]:
    """A grid of the model's own samples of images, one row per class when it has labels."""
    from .plots import save_image_grid, tile_images

    steps = REPORT_GIBBS_STEPS
    if estimator_kind(estimator) == "generative":
        _class_samples_grid(estimator, spec, REPORT_SAMPLES, steps, path)
        return path, f"Samples of each class from the model ({steps:,} Gibbs steps)"
    drawn = spec.restore(estimator.sample(REPORT_SAMPLES**2, gibbs_steps=steps))
    save_image_grid(tile_images(drawn, spec.picture_shape), path)
    return path, f"Samples from the model ({steps:,} Gibbs steps)"


def _class_samples_grid(estimator, spec, per_class: int, steps: int, path, title=None) -> list:
    """``per_class`` samples of each class of a generative model (``steps`` Gibbs steps) as
    images in a PNG grid, one row per class; returns the classes."""
    from .plots import plot_class_samples

    classes = list(estimator.classes_)
    drawn = [estimator.sample(per_class, label=c, gibbs_steps=steps) for c in classes]
    images = spec.restore(np.concatenate(drawn))
    plot_class_samples(images, [str(c) for c in classes], spec.picture_shape, path, title)
    return classes


def _model_facts(summary: dict) -> dict:
    sizes = [summary["layers"][0]["visible"]] + [layer["hidden"] for layer in summary["layers"]]
    return {
        "model": summary["model"],
        "task": summary["task"],
        "layers": "-".join(map(str, sizes)),
        "units": ", ".join(f"{_units_text(u)}->{u['hidden_units']}" for u in summary["layers"]),
        "fine-tuning epochs": summary["fine_tuning"]["epochs"],
        **{
            f"{words} epochs": summary[key]["epochs"]
            for _, key, words in GENERATIVE_PHASES
            if key in summary
        },  # fmt: skip
        "deepbelief": summary["package_version"],
    }


# ====================================================================== demo
DEMO_FILES = REPORT_FILES  # the report's, samples.png by class among them


DEMO_SOURCE = "scikit-learn digits"


def _check_demo_folder(out: Path, overwrite: bool) -> None:
    """The demo's folder: new, empty, an earlier demo's (replaced: running the demo again just
    works) or, with ``--overwrite``, one with other files too (kept); its files and its
    ``model`` folder are checked like every output."""
    output_folder(out, DEMO_FILES)
    if not out.is_dir():
        return
    overwrite = overwrite or _earlier_demo(out)
    ModelFolder(out / "model", overwrite=overwrite)  # checks only
    names = {p.name for p in out.iterdir()}
    if names and not overwrite:
        raise UsageError(
            f"{out}: is not empty; use a new folder, or --overwrite to replace an earlier "
            "demo's files (other files are kept)"
        )


def _earlier_demo(out: Path) -> bool:
    """Whether ``out`` holds nothing but the files of an earlier ``deepbelief demo``."""
    model = out / "model"
    if not {p.name for p in out.iterdir()} <= {*DEMO_FILES, "model"} or not model.is_dir():
        return False
    if model.is_symlink() or {p.name for p in model.iterdir()} != {MODEL_FILE, CARD_FILE}:
        return False
    try:
        return read_json(model / CARD_FILE).get("data") == DEMO_SOURCE
    except ModelFileError:
        return False


def demo(args) -> int:
    """``deepbelief demo``: a DBN classifier on scikit-learn's digits, end to end."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .dbn_estimators import DBN, DBNClassifier
    from .plots import plot_filters

    _check_demo_folder(args.output, args.overwrite)
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, random_state=args.seed, stratify=y
    )
    source = DEMO_SOURCE
    spec, Xt = InputSpec.fit(Dataset(X_train, y_train, "images", (8, 8), source), "minmax",
                             "impute", False)  # fmt: skip
    X_held, _ = spec.features(Dataset(X_test, y_test, "images", (8, 8), source))
    verbose = verbosity(args)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    clf = DBNClassifier(epochs=args.epochs, random_state=args.seed, verbose=verbose)
    clf.fit(Xt, y_train)
    seconds = time.perf_counter() - start
    metrics = score(clf, "classification", X_held, y_test)
    card = _card("classification", clf, spec, source, len(Xt), len(X_held), seconds, metrics)
    card = save_model(out / "model", clf, card)
    filters = plot_filters(clf.dbn_.rbms[0].weight, (8, 8), out / "filters.png",
                           title="first-layer filters after fine-tuning")  # fmt: skip
    gen = DBN(hidden_layers=(100, 200), pretrain_epochs=20, random_state=args.seed,
              verbose=verbose).fit(Xt, y_train)  # fmt: skip
    samples = out / "samples.png"
    _class_samples_grid(gen, spec, 10, 200, samples, "generated digits, one row per class")
    caption = "Samples of each digit from the generative DBN"
    report = write_model_report(
        clf, card, spec, out, "deepbelief demo: DBN on digits", extra=[(samples, caption)]
    )
    results = {"test_accuracy": metrics["accuracy"], "train_seconds": round(seconds, 1),
               "model_dir": str(out / "model"), "filters": str(filters), "samples": str(samples),
               "report": str(report)}  # fmt: skip
    message = (
        f"wrote the demo to {_folder(out)} ({architecture(clf)} on {DEMO_SOURCE}, "
        f"{len(Xt)} training images, {seconds:.1f} s; test accuracy "
        f"{metrics['accuracy']:.4f}): model{os.sep}, {report.name}, {filters.name}, "
        f"{samples.name}"
    )
    return finish(args, message, results)
