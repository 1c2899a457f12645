"""The ``deepbelief`` command. No maths here: parse, call the library, report.

Every :class:`DeepBeliefError`, every bad argument and every unreadable or unwritable path
ends as one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import warnings
from pathlib import Path

from ._version import __version__
from .errors import DataWarning, DeepBeliefError, UsageError, drop_advice

log = logging.getLogger("deepbelief")

UNITS_VISIBLE = ("auto", "bernoulli", "gaussian")
UNITS_HIDDEN = ("bernoulli", "relu", "gaussian")
MODELS = ("auto", "classifier", "regressor", "generative", "unsupervised")
# deepbelief.recipes.PRESETS, without importing torch
PRESETS = ("hinton2006", "lee2009", "srivastava2014")


class _HelpFormatter(argparse.HelpFormatter):
    """Help that shows each option's default as "(default: 20)"; an option whose default is
    None or a flag says in its own help what happens without it, and a help text that
    already names its default (``default:``) is left as it is."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            not action.option_strings
            or default is None
            or default is argparse.SUPPRESS
            or isinstance(default, bool)
            or "default:" in text
            or "%(default)" in text
        ):
            return text
        if isinstance(default, (list, tuple)):
            shown = " ".join(map(str, default))
        else:
            shown = str(default)
        return f"{text} (default: {shown.replace('%', '%%')})"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


# ------------------------------------------------------------------ argument types
def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def output_file(text: str) -> Path:
    """A file to write: a name that ends with a slash names a folder (``-o out/`` wrote a
    file named ``out``)."""
    if text.endswith(("/", os.sep)):
        raise argparse.ArgumentTypeError(
            f"{text} names a folder; name the file to write in it, e.g. {text}out.csv"
        )
    return Path(text)


def nonnegative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def nonnegative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def fraction(text: str) -> float:
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value


def image_size(text: str) -> tuple[int, int]:
    parts = text.lower().split("x")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"must be HEIGHTxWIDTH such as 28x28, got {text}")
    return positive_int(parts[0]), positive_int(parts[1])


def conv_layer(text: str) -> tuple[int, int, int]:
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(
            f"must be FILTERS:KERNEL or FILTERS:KERNEL:POOL such as 24:5:2, got {text}"
        )
    values = [positive_int(part) for part in parts]
    return tuple(values + [1] * (3 - len(values)))


def _number(text, kind):
    try:
        return kind(text)
    except (TypeError, ValueError):
        pass
    if kind is int:
        try:
            float(text)
        except (TypeError, ValueError):
            pass
        else:  # "1.5" is a number, not an integer
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


# ------------------------------------------------------------------ the parser
JSON_HELP = {
    "train": "print the model card (settings, held-out metrics, model directory) as JSON on "
    "standard output instead of the summary line",
    "predict": 'write the predictions as one JSON object instead of CSV: {"target": COLUMN, '
    '"rows": N, "classes": [...], "files": [...], "predictions": [...], "probabilities": '
    "[{CLASS: P, ...}, ...]} (classes for classifiers, files for an image folder, "
    "probabilities with --proba; one entry per row, in order; e.g. jq '.predictions[]')",
    "evaluate": "print the metrics as JSON on standard output",
    "sample": "print what was written (file, rows, columns) as JSON on standard output "
    "instead of the summary line (when -o is a file)",
    "transform": "print what was written (file, rows, features) as JSON on standard output "
    "instead of the summary line (when -o is a file)",
    "denoise": "print what was written (file, rows, method) as JSON on standard output "
    "instead of the summary line (when -o is a file)",
    "score": "print what was written (file, rows, lowest score) as JSON on standard output "
    "instead of the summary line (when -o is a file)",
    "impute": "print what was written (file, rows, cells filled) as JSON on standard output "
    "instead of the summary line (when -o is a file)",
    "info": "print the description as JSON on standard output",
    "report": "print the report's path as JSON on standard output instead of the summary line",
    "demo": "print the results as JSON on standard output",
}


def _common(command: str) -> argparse.ArgumentParser:
    """The options every subcommand takes (``--json`` says what it prints)."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    trains = command in ("train", "demo")
    quiet = "nothing on standard error but errors: no warnings or summary line"
    if trains:
        quiet = quiet.replace("no ", "no progress bars, epoch lines, ", 1)
    common.add_argument("--quiet", action="store_true", help=quiet)
    common.add_argument("--json", action="store_true", help=JSON_HELP[command])
    verbose = "informational messages on standard error"
    if trains:
        verbose = (
            "one line per epoch even on a terminal (instead of progress bars), and "
            "informational messages; without it, progress bars on a terminal and one line "
            "per epoch elsewhere (a pipe, a log file)"
        )
    common.add_argument("-v", "--verbose", action="store_true", help=verbose)
    return common


def build_parser() -> argparse.ArgumentParser:
    """The ``deepbelief`` argument parser with every subcommand."""
    parser = _Parser(
        prog="deepbelief",
        description="Deep Belief Networks and RBMs. Data and JSON go to standard output; "
        "progress, warnings and a one-line summary go to standard error.",
    )
    parser.add_argument("--version", action="version", version=f"deepbelief {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name, help):
        return commands.add_parser(name, parents=[_common(name)], help=help, description=help)

    _add_train(add("train", "train a model on a file"))
    _add_predict(add("predict", "predict the target of new rows"))
    _add_evaluate(add("evaluate", "score a model on rows with their target"))
    _add_sample(add("sample", "draw new samples from a generative or unsupervised model"))
    _add_transform(add("transform", "the learned features of the top hidden layer"))
    _add_denoise(add("denoise", "clean rows (or images) with a model: up-down passes"))
    _add_score(add("score", "how typical each row is for a model (low: anomalous)"))
    _add_impute(add("impute", "fill the empty cells of a CSV from an RBM trained on it"))
    info = add("info", "describe a model: layers, units, training, metrics, file format")
    info.add_argument("model", type=Path, help="model directory")
    report = add("report", "HTML report of a model, with its plots")
    report.add_argument("model", type=Path, help="model directory")
    report.add_argument(
        "data",
        type=Path,
        nargs="?",
        help="rows with their target (e.g. a test set): the report adds the model's metrics "
        "on them, a classifier's confusion matrix and a regressor's predicted-against-actual "
        "plot",
    )
    report.add_argument(
        "-o", "--output", type=Path, required=True, help="output folder (report.html, PNGs)"
    )
    report.add_argument(
        "--overwrite",
        action="store_true",
        help="replace report files in the folder that an earlier report did not write",
    )
    _add_data_options(report, training=False)
    demo = add("demo", "end-to-end run on the digits bundled with scikit-learn")
    demo.add_argument(
        "-o", "--output", type=Path, default=Path("deepbelief-demo"), help="output folder"
    )
    demo.add_argument("--epochs", type=positive_int, default=30, help="fine-tuning epochs")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo's files")
    return parser


def _add_data_options(p, training: bool) -> None:
    p.add_argument("--no-header", action="store_true", help="the CSV has no header line")
    p.add_argument(
        "--labels", type=Path, help="IDX file of labels for IDX images (default: no labels)"
    )
    p.add_argument(
        "--image-size",
        type=image_size,
        help="resize folder images to HEIGHTxWIDTH (default: keep their size, which must be "
        "the same for all)",
    )
    if training:
        p.add_argument(
            "--target", help="target column: name or position such as 0 or -1 (default: the last)"
        )
        p.add_argument("--no-target", action="store_true", help="unsupervised: no target column")
        p.add_argument(
            "--task",
            choices=("auto", "classification", "regression"),
            default="auto",
            help="auto: classification for text labels or at most 20 distinct integers, else "
            "regression",
        )
        p.add_argument(
            "--missing",
            choices=("impute", "error"),
            default="impute",
            help="missing values: fill them (the column's median, or most frequent category) "
            "or refuse them",
        )
        p.add_argument(
            "--drop-ids",
            action="store_true",
            help="drop identifier-like columns, all distinct: text, or integers named as an "
            "identifier (id, user_id, userId, key) or numbering the rows",
        )
        p.add_argument(
            "--non-numeric",
            choices=("error", "missing", "text"),
            default="error",
            help="non-numeric cells in a mostly numeric column: refuse them (error), read them "
            "as missing values (missing) or keep the column as categories (text)",
        )


def _add_train(p) -> None:
    p.add_argument(
        "data",
        nargs="?",
        type=Path,
        help="CSV, NPY/NPZ, IDX, image folder, or folder of .npy shards; with --model "
        "unsupervised (or --no-target), a 2-D .npy file or a folder of shards is read a block "
        "at a time, never whole into memory",
    )
    p.add_argument("-o", "--output", type=Path, help="model directory to write")
    p.add_argument(
        "--config",
        type=Path,
        help="TOML or YAML file with the options below (the command line wins)",
    )
    p.add_argument("--resume", type=Path, metavar="MODEL_DIR", help="continue an interrupted run")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model (or interrupted run) in MODEL_DIR; other files are kept",
    )
    _add_data_options(p, training=True)
    m = p.add_argument_group("model")
    m.add_argument(
        "--model",
        choices=MODELS,
        default="auto",
        help="auto: a classifier or regressor by the target, unsupervised without one; "
        "generative: a DBN with label units that samples by class",
    )
    m.add_argument(
        "--layers",
        type=positive_int,
        nargs="+",
        help="hidden layer sizes (default: 256 256, or the --preset's)",
    )
    m.add_argument(
        "--visible",
        choices=UNITS_VISIBLE,
        default="auto",
        help="input units: bernoulli (inputs min-max scaled to [0, 1]) or gaussian "
        "(standardised); categorical columns get softmax units either way; auto: gaussian for "
        "a table's numeric columns (bernoulli when they hold only 0 and 1), bernoulli for "
        "images and arrays",
    )
    m.add_argument("--hidden", choices=UNITS_HIDDEN, default="bernoulli", help="hidden units")
    m.add_argument(
        "--conv",
        type=conv_layer,
        nargs="+",
        metavar="FILTERS:KERNEL[:POOL]",
        help="convolutional RBM layers below the --layers, e.g. --conv 24:5:2 40:5:2 (filters, "
        "square kernel, probabilistic max-pooling block); images only (IDX, image folders, "
        "or rows of a square grey image); a classifier or regressor (default: none)",
    )
    m.add_argument(
        "--device", default="auto", help="auto (CUDA when available, else CPU), cpu, cuda, "
        "cuda:1"
    )  # fmt: skip
    m.add_argument(
        "--seed", type=int, default=0, help="random seed; the same seed gives the same model"
    )
    g = p.add_argument_group("pretraining")
    g.add_argument(
        "--pretrain-epochs",
        type=positive_int,
        help="epochs per layer (default: auto: more for fewer rows, 11 to 50; a generative or "
        "unsupervised model: 10)",
    )
    g.add_argument(
        "--pretrain-lr",
        type=positive_float,
        help="RBM learning rate (default: by unit type: 0.1 for binary inputs, 0.01 for "
        "real-valued ones and for the layer on conv layers, 0.001 for gaussian hidden units)",
    )
    g.add_argument(
        "--pretrain-batch-size",
        type=positive_int,
        help="rows per update (default: auto: 20, 100 from 20,000 rows; a generative or "
        "unsupervised model: 20)",
    )
    g.add_argument(
        "--sampler",
        choices=("cd", "pcd", "pt"),
        default="cd",
        help="contrastive divergence, persistent CD or parallel tempering",
    )
    g.add_argument("-k", "--k", type=positive_int, default=1, help="Gibbs steps per update")
    g.add_argument(
        "--centering", action="store_true", help="centered gradients (Melchior et al. 2016)"
    )
    g.add_argument(
        "--pretrain-dropout",
        type=fraction,
        default=0.0,
        help="probability of dropping each hidden unit in the RBMs' training (dropout RBMs, "
        "Srivastava et al. 2014; not the fine-tuning --dropout)",
    )
    f = p.add_argument_group("fine-tuning")
    f.add_argument(
        "--epochs",
        type=positive_int,
        help="backprop epochs of a classifier or regressor; with early stopping the most "
        "(default: auto: 50 + 30,000 / rows, at most 300); with --model generative, of the "
        "label model's recognition path after up-down (default 0)",
    )
    f.add_argument(
        "--batch-size",
        type=positive_int,
        help="rows per update (default: auto: 32, 50 from 20,000 rows)",
    )
    f.add_argument(
        "--optimizer",
        choices=("auto", "sgd", "adam"),
        default="auto",
        help="auto: sgd for classification, adam for regression",
    )
    f.add_argument(
        "--lr",
        type=positive_float,
        help="learning rate (default: by optimizer and task: 0.1 for sgd (0.01 through "
        "--hidden gaussian), 0.01 for adam on regression, 0.001 for adam on classification; "
        "0.1 with --model generative)",
    )
    f.add_argument("--momentum", type=fraction, default=0.9, help="SGD momentum")
    f.add_argument(
        "--weight-decay", type=nonnegative_float, default=0.0, help="L2 penalty on the weights"
    )
    f.add_argument(
        "--dropout",
        type=fraction,
        help="dropout rate of hidden units (default: auto: 0.2 for classification, 0.3 for "
        "regression, 0.2 with --model generative)",
    )
    f.add_argument(
        "--input-dropout",
        type=fraction,
        help="dropout rate of inputs (default: auto: 0, or the --preset's)",
    )
    f.add_argument(
        "--shift",
        type=nonnegative_int,
        metavar="PIXELS",
        help="with --model generative: translate each training image by a random offset of up "
        "to PIXELS along each axis in the backprop epochs (data augmentation; default 0, or "
        "the --preset's)",
    )
    f.add_argument(
        "--max-norm",
        type=positive_float,
        help="cap on the L2 norm of each unit's incoming weights (default: no cap)",
    )
    f.add_argument(
        "--lr-schedule",
        choices=("constant", "linear", "cosine"),
        help="learning rate over the run; linear and cosine end at zero (default: auto: "
        "constant, linear from 20,000 rows)",
    )
    f.add_argument(
        "--early-stopping",
        action=argparse.BooleanOptionalAction,
        help="stop when the loss on an inner validation split (20%% below 1,000 rows, else "
        "10%%) has not improved for a third of the epochs, then refit on all rows for the "
        "best number of epochs (default: auto: from 100 to 20,000 rows)",
    )
    f.add_argument(
        "--average-epochs",
        type=nonnegative_int,
        default=0,
        help="end with the average weights of the last N epochs; 0: the last epoch's weights; "
        "not with --early-stopping",
    )
    f.add_argument(
        "--mixed-precision",
        choices=("auto", "on", "off"),
        help="bfloat16 forward and backward passes; auto: where the device has native "
        "bfloat16 (default: off, or the --preset's)",
    )
    f.add_argument(
        "--up-down-epochs",
        type=nonnegative_int,
        help="up-down fine-tuning epochs of a generative or unsupervised model (default: "
        "5 for a generative model of two or more --layers, else 0)",
    )
    f.add_argument(
        "--label-training",
        choices=("generative", "discriminative", "hybrid"),
        help="how a generative model's label RBM learns: CD on the joint (generative), then "
        "20 epochs on -log p(y|x) (discriminative) or on both (hybrid; Larochelle & Bengio "
        "2008) (default: hybrid)",
    )
    r = p.add_argument_group("run")
    r.add_argument(
        "--preset",
        choices=PRESETS,
        help="a published setup: hinton2006 (784-500-500-2000, 50 CD-1 epochs a layer, "
        "backprop), srivastava2014 (the same net fine-tuned with dropout in a 30-minute "
        "budget), lee2009 (a convolutional DBN for 28x28 images, 30 minutes); with --model "
        "generative, hinton2006 is the generative DBN of Hinton, Osindero & Teh (2006) in a "
        "60-minute budget; options given explicitly win (default: none)",
    )
    r.add_argument(
        "--time-budget",
        type=positive_float,
        metavar="SECONDS",
        help="plan the epochs of pretraining (15%%) and fine-tuning to end within this time; "
        "with --model generative, those of the backprop after up-down (default: none, or "
        "the --preset's)",
    )
    r.add_argument(
        "--validation-split",
        type=fraction,
        default=0.0,
        help="fraction of the rows held out, never trained on, and scored after training "
        "(early stopping uses its own split and then trains on every row; data read a block at "
        "a time holds out its last rows)",
    )
    r.add_argument(
        "--checkpoint-every",
        type=positive_int,
        help="epochs between checkpoints for --resume (default: every 30 seconds; an "
        "interruption, even Ctrl-C, keeps the last completed update)",
    )


def _add_predict(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument(
        "data",
        type=Path,
        help="rows to predict (with or without the target); from an image folder (class "
        "subfolders, or the images directly in it) the CSV's first column is each image's file",
    )
    p.add_argument(
        "-o", "--output", type=output_file, help="file to write (default, or -: standard output)"
    )
    p.add_argument("--proba", action="store_true", help="add class probabilities")
    _add_data_options(p, training=False)


def _add_evaluate(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("data", type=Path, help="rows with their target")
    p.add_argument(
        "--log-likelihood",
        action="store_true",
        help="add an AIS estimate of the log-likelihood (generative and unsupervised models)",
    )
    _add_data_options(p, training=False)


def _add_sample(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument(
        "-n",
        type=positive_int,
        default=16,
        help="number of samples (of each class, for a PNG of a generative model without --label)",
    )
    p.add_argument(
        "--label",
        help="class to sample (generative models; default: a PNG shows n of every class, "
        "other outputs draw the classes as the model does)",
    )
    p.add_argument(
        "--gibbs-steps", type=positive_int, default=1000, help="Gibbs steps in the top RBM"
    )
    p.add_argument(
        "-o",
        "--output",
        type=output_file,
        required=True,
        help=".png (image data), .csv, .npy, or - for CSV on standard output",
    )


def _add_transform(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("data", type=Path, help="rows to transform")
    p.add_argument(
        "-o",
        "--output",
        type=output_file,
        required=True,
        help=".csv, .npy, or - for CSV on standard output",
    )
    _add_data_options(p, training=False)


def _add_denoise(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("data", type=Path, help="rows to clean")
    p.add_argument(
        "-o", "--output", type=output_file, required=True,
        help=".csv, .npy, .png (image data), or - for CSV on standard output",
    )  # fmt: skip
    p.add_argument(
        "--method", choices=("mean-field", "gibbs"), default="mean-field",
        help="mean-field: up and down passes of means; gibbs: the average of sampled passes",
    )  # fmt: skip
    p.add_argument(
        "--steps", type=positive_int,
        help="passes (default: 1 for mean-field, 20 with --noise, 100 for gibbs)",
    )  # fmt: skip
    p.add_argument(
        "--noise", choices=("salt-and-pepper", "gaussian"),
        help="how the rows were corrupted (binary data): the noisy values are then taken as "
        "evidence, and the result is their posterior mean; needs --noise-level",
    )  # fmt: skip
    p.add_argument(
        "--noise-level", type=float, metavar="LEVEL",
        help="salt-and-pepper: the share of values set to 0 or 1; gaussian: the standard "
        "deviation",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed (gibbs)")
    _add_data_options(p, training=False)


def _add_score(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("data", type=Path, help="rows to score")
    p.add_argument(
        "-o", "--output", type=output_file,
        help="CSV file with a score column (default, or -: standard output)",
    )  # fmt: skip
    _add_data_options(p, training=False)


def _add_impute(p) -> None:
    p.add_argument(
        "data", type=Path,
        help="CSV file with empty cells (empty fields, or NA, NaN, null, ...); in a one-column "
        "file a blank line is an empty cell (refused: with one column a row with no value has "
        "nothing to fill it from), wider files skip blank lines",
    )  # fmt: skip
    p.add_argument(
        "-o",
        "--output",
        type=output_file,
        help="CSV file to write (default, or -: standard output)",
    )
    p.add_argument(
        "--no-header", action="store_true",
        help="the CSV has no header line (nor has the output)",
    )  # fmt: skip
    p.add_argument(
        "--non-numeric", choices=("error", "missing", "text"), default="error",
        help="non-numeric cells in a mostly numeric column (as train): refuse them (error), "
        "read them as empty cells and fill them (missing) or keep the column as categories "
        "(text)",
    )  # fmt: skip
    p.add_argument("--hidden", type=positive_int, default=128, help="hidden units of the RBM")
    p.add_argument(
        "--epochs", type=positive_int,
        help="CD epochs per round (default: about 30,000 updates, 5 to 100 epochs)",
    )  # fmt: skip
    p.add_argument(
        "--prediction-epochs", type=nonnegative_int, default=10,
        help="epochs of training the fill itself to predict hidden cells (0: none)",
    )  # fmt: skip
    p.add_argument(
        "--sample", action="store_true",
        help="one random draw per cell instead of the expected value (multiple imputation: "
        "rerun with other --seed values)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="random seed")


# ------------------------------------------------------------------ configuration files
def read_config(path: Path) -> dict:
    """Options from a TOML (``.toml``) or YAML (``.yaml``/``.yml``) file, keys as the long
    option names (``pretrain-epochs`` or ``pretrain_epochs``)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: config file is not text") from exc
    suffix = path.suffix.lower()
    if suffix == ".toml":
        config = _parse_toml(text, path)
    elif suffix in (".yaml", ".yml"):
        config = _parse_yaml(text, path)
    else:
        raise UsageError(f"{path}: config files are .toml, .yaml or .yml")
    if not isinstance(config, dict):
        raise UsageError(f"{path}: the config must be a table of option = value")
    options: dict = {}
    for key, value in config.items():
        name = str(key).replace("-", "_")
        if name in options:  # pretrain-epochs and pretrain_epochs: one of them was lost
            raise UsageError(f"{path}: option {key!r} is given twice; keep one")
        options[name] = value
    return options


def _parse_toml(text: str, path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML ({exc})") from exc


def _parse_yaml(text: str, path: Path):
    try:
        import yaml
    except ModuleNotFoundError as exc:
        raise UsageError(f"{path}: YAML configs need PyYAML: pip install pyyaml") from exc

    class Loader(yaml.SafeLoader):  # a key given twice: refused, not the last one kept
        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
            twice = [key for i, key in enumerate(keys) if key in keys[:i]]
            if twice:
                raise UsageError(f"{path}: option {twice[0]!r} is given twice; keep one")
            return super().construct_mapping(node, deep)

    try:
        return yaml.load(text, Loader=Loader) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from exc


CONFIG_EXCLUDED = {"config", "resume", "overwrite", "debug", "quiet", "json", "verbose", "help"}


def apply_config(parser: argparse.ArgumentParser, argv: list[str], config: dict, path: Path):
    """Parse ``argv`` with the config's values as defaults (the command line wins); each
    value goes through its option's own type check."""
    train = _subparser(parser, "train")
    actions = {a.dest: a for a in train._actions if a.dest not in CONFIG_EXCLUDED}
    defaults = {}
    for key, value in config.items():
        action = actions.get(key)
        if action is None:
            import difflib

            close = difflib.get_close_matches(key, list(actions), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"{path}: unknown option {key!r}{hint}")
        defaults[key] = _config_value(action, value, path, key)
    train.set_defaults(**defaults)
    args = parser.parse_args(argv)
    given = {word.split("=")[0] for word in argv if word.startswith("--")}
    args.config_origin = {  # the options whose value the file gave: its errors name it
        action.option_strings[0]: path
        for key, action in actions.items()
        if key in config and action.option_strings and not given & set(action.option_strings)
    }
    return args


def _from_config(message: str, args) -> str:
    """``message`` with the config file in front when it names an option that file set
    (``--device gpu: not a device`` -> ``run.yaml: --device gpu: not a device``)."""
    origin = getattr(args, "config_origin", None) or {}
    named = [flag for flag in re.findall(r"--[a-z][\w-]*", message) if flag in origin]
    return f"{origin[named[0]]}: {message}" if named else message


def _config_value(action, value, path, key):
    if value is None:  # YAML's null (``seed:`` with nothing after it)
        raise UsageError(
            f"{path}: option {key!r} has no value; give one, or remove the line for the default"
        )
    if isinstance(action, (argparse._StoreTrueAction, argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise UsageError(f"{path}: option {key!r} must be true or false, got {value!r}")
        return value
    many = action.nargs in ("+", "*")
    values = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise UsageError(f"{path}: option {key!r} takes one value, got a list")
    if any(isinstance(v, bool) for v in values) and action.type is not None:
        raise UsageError(f"{path}: option {key!r} takes a value here; true and false are for "
                         "on/off options")  # fmt: skip
    try:
        converted = [action.type(str(v)) if action.type else str(v) for v in values]
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise UsageError(f"{path}: option {key!r}: {exc}") from exc
    if action.choices is not None:
        bad = [v for v in converted if v not in action.choices]
        if bad:
            choices = ", ".join(map(str, action.choices))
            raise UsageError(f"{path}: option {key!r}: {bad[0]!r} is not one of {choices}")
    return converted if many else converted[0]


def _commands(parser) -> dict:
    """The subcommands' parsers by name."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _subparser(parser, name):
    return _commands(parser)[name]


# ------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    saved = (log.handlers[:], log.level, log.propagate)
    try:
        with warnings.catch_warnings():  # the filters and showwarning as the caller had them
            return _main(argv)
    finally:  # the library logger as the caller had it (main() may be called from Python)
        log.handlers[:] = saved[0]
        log.setLevel(saved[1])
        log.propagate = saved[2]


def _main(argv: list[str]) -> int:
    _DEFERRED.clear()
    debug = "--debug" in argv
    joined, args = False, None
    try:
        try:
            args = _parse(argv)
        except DeepBeliefError:
            if _later_torchrun_process():  # every process parses the same line: rank 0 says
                return 0  # it and fails the run (a failure here would have torchrun stop rank
                # 0, still importing, before it said why)
            raise
        joined = _join_processes(args)
        _configure_logging(args.quiet, args.verbose)
        _configure_warnings(args.quiet, debug)
        if args.command in ("denoise", "score", "impute"):
            from . import application_commands as commands
        else:
            from . import commands

        return _say_deferred(getattr(commands, args.command)(args))
    except DeepBeliefError as exc:
        return _fail(_from_config(str(exc), args), debug)
    except BrokenPipeError:  # the reader stopped (``| head``): what it wanted, it has
        return _closed_pipe()
    except OSError as exc:  # unreadable input, unwritable output, full disk
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", debug)
    except ValueError as exc:  # a setting the library refused
        return _fail(_from_config(str(exc), args), debug)
    except KeyboardInterrupt as exc:
        # not imported here: a Ctrl-C while torch was being imported left it half-imported,
        # and importing it again raised (or crashed); not imported yet means one process
        distributed = sys.modules.get(f"{__package__}.distributed")
        is_main = getattr(distributed, "is_main", lambda: True)
        if is_main():  # one line for a distributed run, not one per process
            detail = f" {exc}" if str(exc) else ""  # e.g. before training began
            print(f"deepbelief: interrupted{detail}{_resume_hint(args)}", file=sys.stderr)
        return 128 + _signal_number(exc)
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # a bug: still one line, unless --debug
        if debug:
            raise
        if joined and _peer_failed(exc):
            return 1
        print(
            f"deepbelief: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
            "the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    finally:
        if joined:  # a process that exits without leaving its group aborts
            from . import distributed

            distributed.leave()


def _resume_hint(args) -> str:
    """How to continue an interrupted ``train`` that left its checkpoint, else ``""``. (Not
    imported here, as in the handler: a training run has imported the model folders.)"""
    model_dir = sys.modules.get(f"{__package__}.model_dir")
    folder = getattr(args, "resume", None) or getattr(args, "output", None)
    if getattr(args, "command", None) != "train" or folder is None or model_dir is None:
        return ""
    if not (Path(folder) / model_dir.CHECKPOINT_FILE).exists():
        return ""
    return f"; `deepbelief train --resume {folder}` continues from its last checkpoint"


def _signal_number(exc: BaseException) -> int:
    """The signal that interrupted the command (``exc.signal``, set by the training loop, on
    ``exc`` or an exception it was raised from): SIGTERM's 15, else Ctrl-C's 2."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if getattr(exc, "signal", None):
            return int(exc.signal)
        exc = exc.__cause__ or exc.__context__
    return 2


def _later_torchrun_process() -> bool:
    """Whether torchrun started this process as one of several, not as rank 0 (read from its
    environment, before joining the group)."""
    size, rank = os.environ.get("WORLD_SIZE", "1").strip(), os.environ.get("RANK", "0").strip()
    return size not in ("", "0", "1") and rank not in ("", "0")


def _peer_failed(exc: Exception) -> bool:
    """On a process other than rank 0 of a distributed run, whose collective ``exc`` failed
    because another process stopped (rank 0 says why): one line saying so instead of an
    internal error."""
    import torch.distributed as dist

    from . import distributed

    rank, size = distributed.world()
    lost = isinstance(exc, getattr(dist, "DistError", ())) or "peer" in str(exc).lower()
    if rank == 0 or not (isinstance(exc, RuntimeError) and lost):
        return False
    print(
        f"deepbelief: process {rank} of {size} stopped: another process of the run failed "
        "(rank 0 says why)",
        file=sys.stderr,
    )
    return True


def _join_processes(args) -> bool:
    """Under torchrun (``WORLD_SIZE`` > 1), join the process group (returns whether it did):
    ``train`` alone runs data-parallel; the processes other than rank 0 train quietly and
    write nothing."""
    if os.environ.get("WORLD_SIZE", "1").strip() in ("", "0", "1"):
        return False  # one process (without importing torch)
    from . import distributed

    if not distributed.launched_by_torchrun() or distributed.is_distributed():
        return False
    if args.command != "train":
        raise ValueError(
            f"only 'deepbelief train' runs under torchrun (several processes); run "
            f"'deepbelief {args.command}' as one process"
        )
    distributed.init_from_environment()
    if not distributed.is_main():
        args.quiet, args.verbose = True, False
    return True


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    _check_command_first(parser, argv)
    try:
        args = parser.parse_args(argv)  # --help and --version exit here (SystemExit 0)
    except UsageError as exc:
        raise UsageError(_with_suggestion(parser, argv, str(exc))) from None
    if args.command == "train" and args.config is not None:
        args = apply_config(parser, argv, read_config(args.config), args.config)
    if args.command == "train":
        _check_train_options(parser, args)
    return args


def _with_suggestion(parser, argv: list[str], message: str) -> str:
    """argparse's ``message`` with the closest valid word for a mistyped option (``--layres``:
    did you mean --layers?) or choice (``trian``: did you mean 'train'?)."""
    import difflib

    choice = re.search(r"invalid choice: '([^']*)' \(choose from ([^)]*)\)", message)
    if choice:
        choices = re.findall(r"'([^']*)'", choice[2])
        close = difflib.get_close_matches(choice[1], choices, n=1)
        return f"{message}; did you mean {close[0]!r}?" if close else message
    unknown = re.search(r"unrecognized arguments: (.*)", message)
    commands = _commands(parser)
    command = next((word for word in argv if word in commands), None)
    if not unknown or command is None:
        return message
    options = [o for a in commands[command]._actions for o in a.option_strings]
    words = [w.split("=")[0] for w in unknown[1].split() if w.startswith("--")]
    close = [m for w in words for m in difflib.get_close_matches(w, options, n=1)]
    return f"{message} (did you mean {', '.join(close)}?)" if close else message


def _check_command_first(parser, argv: list[str]) -> None:
    """UsageError when the line starts with an option of a command that follows it
    (``deepbelief -o m train data.csv``): argparse would call the option's value an invalid
    command."""
    if not argv or not argv[0].startswith("-") or argv[0] in ("-h", "--help", "--version"):
        return
    command = next((word for word in argv if word in _commands(parser)), None)
    if command is not None:
        option = argv[0].split("=")[0]
        raise UsageError(
            f"{option} goes after the command: deepbelief {command} ... {option} ... (the "
            "command comes first)"
        )


#: ``train`` options an unsupervised model (greedy pretraining alone) has no use for
NOT_UNSUPERVISED = {
    "--epochs", "--batch-size", "--optimizer", "--lr", "--momentum", "--weight-decay",
    "--dropout", "--input-dropout", "--max-norm", "--lr-schedule", "--early-stopping",
    "--average-epochs", "--mixed-precision", "--preset", "--time-budget",
}  # fmt: skip

#: what ``train --resume`` may be given besides the folder: how it talks, not what it trains
RESUME_ALLOWED = {"command", "resume", "quiet", "verbose", "debug", "json"}


def _check_train_options(parser, args) -> None:
    """Options of ``train`` that contradict each other (UsageError naming them)."""
    if args.no_target and args.target is not None:
        raise UsageError("--target and --no-target contradict each other: give one")
    if args.no_target and args.task != "auto":
        raise UsageError(f"--task {args.task} needs a target: it contradicts --no-target")
    train = _subparser(parser, "train")
    given = [
        action.option_strings[0] if action.option_strings else action.dest.upper()
        for action in train._actions
        if action.dest not in RESUME_ALLOWED and action.dest != "help"
        and getattr(args, action.dest, action.default) != action.default
    ]  # fmt: skip
    unsupervised = args.model == "unsupervised" or (args.no_target and args.model == "auto")
    ignored = [option for option in given if option in NOT_UNSUPERVISED]
    args.fine_tuning_options = ignored  # refused too when the data turns out to have no target
    if unsupervised and ignored:
        raise UsageError(
            f"{', '.join(ignored)}: not for an unsupervised model, which is greedy pretraining "
            f"alone (no fine-tuning, no --preset recipe); {drop_advice(ignored)} (it takes "
            "--layers, --pretrain-epochs, --pretrain-lr, --pretrain-batch-size ...)"
        )
    if args.resume is None:
        return
    if given:
        raise UsageError(
            f"--resume continues the interrupted run with the settings it started with "
            f"({args.resume}/run.json); it takes no {', '.join(given)}: {drop_advice(given)}, or "
            "start a new run"
        )


def _configure_logging(quiet: bool, verbose: bool) -> None:
    """The library's messages on stderr: errors only with ``--quiet``, informational ones with
    ``-v``, else warnings. Epoch lines and the summary line are written by the commands."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_not_epoch_records)
    log.handlers[:] = [handler]
    log.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)
    log.propagate = False


def _not_epoch_records(record: logging.LogRecord) -> bool:
    """Leave out the RBM trainer's own per-epoch record (``epoch 3: loss=...``): with ``-v``
    the epoch lines of :mod:`deepbelief.progress` already say it, with the layer's name."""
    return not (record.msg == "epoch %d: %s" and record.module == "training")


def _configure_warnings(quiet: bool, debug: bool) -> None:
    """Python warnings (an undertrained model, a library's deprecation) as one line each on
    stderr, ``deepbelief: warning: ...``; none with ``--quiet``; Python's own format, with
    the file and line, with ``--debug``."""
    if quiet:
        warnings.simplefilter("ignore")
    elif not debug:
        warnings.showwarning = _show_warning


#: warnings said once the command succeeded (an error is then the one line it prints)
_DEFERRED: list[str] = []


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = f"deepbelief: warning: {' '.join(str(message).split())}"
    if issubclass(category, DataWarning):
        _DEFERRED.append(text)
    else:
        print(text, file=sys.stderr, flush=True)


def _say_deferred(code: int) -> int:
    """Print the deferred warnings when the command succeeded (``code`` 0); forget them."""
    lines, _DEFERRED[:] = list(dict.fromkeys(_DEFERRED)), []
    if code == 0 and lines:
        print("\n".join(lines), file=sys.stderr, flush=True)
    return code


def _fail(message: str, debug: bool) -> int:
    if debug:
        raise
    line = " ".join(message.split())
    prefix = "" if line.startswith("deepbelief") else "deepbelief: error: "
    print(f"{prefix}{line}", file=sys.stderr)
    return 2


def _closed_pipe() -> int:
    """Stop quietly when standard output's reader has gone: point the output at the null
    device (so the interpreter's last flush does not fail again) and return 141, the status of
    a process that SIGPIPE ends, as other Unix tools give."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no file descriptor (a test's capture)
        pass
    return 141


def run() -> None:  # console-script entry point
    code = main()
    try:
        sys.stdout.flush()  # the buffered rest, while a closed pipe can still be answered
    except BrokenPipeError:
        code = _closed_pipe()
    sys.exit(code)


if __name__ == "__main__":  # python -m deepbelief.cli
    run()
