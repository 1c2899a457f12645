"""The ``deepbelief`` command. No maths here: parse, call the library, report.

Every :class:`DeepBeliefError`, every bad argument and every unreadable or unwritable path
ends as one line on stderr and exit code 2 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ._version import __version__
from .errors import DeepBeliefError, UsageError

log = logging.getLogger("deepbelief")

UNITS_VISIBLE = ("auto", "bernoulli", "gaussian")
UNITS_HIDDEN = ("bernoulli", "relu", "gaussian")
MODELS = ("auto", "classifier", "regressor", "generative", "unsupervised")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message}")


# ------------------------------------------------------------------ argument types
def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


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


def _number(text, kind):
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


# ------------------------------------------------------------------ the parser
def build_parser() -> argparse.ArgumentParser:
    """The ``deepbelief`` argument parser with every subcommand."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    common.add_argument("--quiet", action="store_true", help="no progress bars or log lines")
    common.add_argument("--json", action="store_true", help="print the results as JSON")
    common.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    parser = _Parser(prog="deepbelief", description="Deep Belief Networks and RBMs.")
    parser.add_argument("--version", action="version", version=f"deepbelief {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(commands.add_parser("train", parents=[common], help="train a model on a file"))
    _add_predict(commands.add_parser("predict", parents=[common], help="predict targets"))
    _add_evaluate(commands.add_parser("evaluate", parents=[common], help="score a model"))
    _add_sample(commands.add_parser("sample", parents=[common], help="draw new samples"))
    _add_transform(commands.add_parser("transform", parents=[common], help="learned features"))
    info = commands.add_parser("info", parents=[common], help="describe a model")
    info.add_argument("model", type=Path, help="model directory")
    report = commands.add_parser("report", parents=[common], help="HTML report of a model")
    report.add_argument("model", type=Path, help="model directory")
    report.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    demo = commands.add_parser("demo", parents=[common], help="end-to-end run on digits")
    demo.add_argument("-o", "--output", type=Path, default=Path("deepbelief-demo"))
    demo.add_argument("--epochs", type=positive_int, default=30, help="fine-tuning epochs")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true", help="replace an earlier demo's files")
    return parser


def _add_data_options(p, training: bool) -> None:
    p.add_argument("--no-header", action="store_true", help="the CSV has no header line")
    p.add_argument("--labels", type=Path, help="IDX file of labels for IDX images")
    p.add_argument("--image-size", type=image_size, help="resize folder images to HxW")
    if training:
        p.add_argument("--target", help="target column: name or position (default: the last)")
        p.add_argument("--no-target", action="store_true", help="unsupervised: no target column")
        p.add_argument("--task", choices=("auto", "classification", "regression"), default="auto")
        p.add_argument("--missing", choices=("impute", "error"), default="impute")
        p.add_argument("--drop-ids", action="store_true", help="drop identifier-like columns")
        p.add_argument(
            "--non-numeric",
            choices=("error", "missing", "text"),
            default="error",
            help="non-numeric cells in a mostly numeric column: refuse them (error), read them "
            "as missing values (missing) or keep the column as categories (text)",
        )


def _add_train(p) -> None:
    p.add_argument("data", nargs="?", type=Path, help="CSV, NPY/NPZ, IDX or image folder")
    p.add_argument("-o", "--output", type=Path, help="model directory to write")
    p.add_argument("--config", type=Path, help="TOML or YAML file with the options below")
    p.add_argument("--resume", type=Path, metavar="MODEL_DIR", help="continue an interrupted run")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the model (or interrupted run) in MODEL_DIR; other files are kept",
    )
    _add_data_options(p, training=True)
    m = p.add_argument_group("model")
    m.add_argument("--model", choices=MODELS, default="auto", help="auto: from the target")
    m.add_argument("--layers", type=positive_int, nargs="+", default=[256, 256])
    m.add_argument("--visible", choices=UNITS_VISIBLE, default="auto")
    m.add_argument("--hidden", choices=UNITS_HIDDEN, default="bernoulli")
    m.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    m.add_argument("--seed", type=int, default=0)
    g = p.add_argument_group("pretraining")
    g.add_argument("--pretrain-epochs", type=positive_int, default=10)
    g.add_argument("--pretrain-lr", type=positive_float, help="default: by unit type")
    g.add_argument("--pretrain-batch-size", type=positive_int, default=20)
    g.add_argument("--sampler", choices=("cd", "pcd", "pt"), default="cd")
    g.add_argument("-k", "--k", type=positive_int, default=1, help="Gibbs steps per update")
    g.add_argument(
        "--centering", action="store_true", help="centered gradients (Melchior et al. 2016)"
    )
    f = p.add_argument_group("fine-tuning")
    f.add_argument("--epochs", type=positive_int, default=50)
    f.add_argument("--batch-size", type=positive_int, default=32)
    f.add_argument("--optimizer", choices=("auto", "sgd", "adam"), default="auto")
    f.add_argument("--lr", type=positive_float, help="default: by optimizer and task")
    f.add_argument("--momentum", type=fraction, default=0.9)
    f.add_argument("--weight-decay", type=nonnegative_float, default=0.0)
    f.add_argument("--dropout", type=fraction, default=0.0)
    f.add_argument("--input-dropout", type=fraction, default=0.0)
    f.add_argument("--max-norm", type=positive_float)
    f.add_argument("--lr-schedule", choices=("constant", "linear", "cosine"), default="constant")
    f.add_argument("--early-stopping", action="store_true", help="on an inner validation split")
    f.add_argument(
        "--average-epochs",
        type=nonnegative_int,
        default=0,
        help="end with the average weights of the last N epochs (not with --early-stopping)",
    )
    f.add_argument("--mixed-precision", choices=("auto", "on", "off"), default="off")
    f.add_argument("--up-down-epochs", type=nonnegative_int, default=0, help="generative model")
    r = p.add_argument_group("run")
    r.add_argument("--validation-split", type=fraction, default=0.2, help="held-out rows scored")
    r.add_argument("--checkpoint-every", type=positive_int, default=1, help="epochs")


def _add_predict(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("data", type=Path, help="rows to predict (with or without the target)")
    p.add_argument("-o", "--output", type=Path, help="CSV file (default or -: standard output)")
    p.add_argument("--proba", action="store_true", help="add class probabilities")
    _add_data_options(p, training=False)


def _add_evaluate(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("data", type=Path, help="rows with their target")
    p.add_argument("--log-likelihood", action="store_true", help="AIS bound (generative models)")
    _add_data_options(p, training=False)


def _add_sample(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("-n", type=positive_int, default=16, help="number of samples")
    p.add_argument("--label", help="class to sample (generative models)")
    p.add_argument("--gibbs-steps", type=positive_int, default=1000)
    p.add_argument("-o", "--output", type=Path, required=True, help=".png, .csv, .npy or - (CSV)")


def _add_transform(p) -> None:
    p.add_argument("model", type=Path, help="model directory")
    p.add_argument("data", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True, help=".csv, .npy or - (CSV)")
    _add_data_options(p, training=False)


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
    return {str(k).replace("-", "_"): v for k, v in config.items()}


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
    try:
        return yaml.safe_load(text) or {}
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
            raise UsageError(f"{path}: unknown option {key!r}")
        defaults[key] = _config_value(action, value, path, key)
    train.set_defaults(**defaults)
    return parser.parse_args(argv)


def _config_value(action, value, path, key):
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise UsageError(f"{path}: option {key!r} must be true or false, got {value!r}")
        return value
    many = action.nargs in ("+", "*")
    values = value if isinstance(value, list) else [value]
    if not many and isinstance(value, list):
        raise UsageError(f"{path}: option {key!r} takes one value, got a list")
    try:
        converted = [action.type(str(v)) if action.type else str(v) for v in values]
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{path}: option {key!r}: {exc}") from exc
    if action.choices is not None:
        bad = [v for v in converted if v not in action.choices]
        if bad:
            choices = ", ".join(map(str, action.choices))
            raise UsageError(f"{path}: option {key!r}: {bad[0]!r} is not one of {choices}")
    return converted if many else converted[0]


def _subparser(parser, name):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise KeyError(name)


# ------------------------------------------------------------------ entry point
def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    saved = (log.handlers[:], log.level, log.propagate)
    try:
        return _main(argv)
    finally:  # the library logger as the caller had it (main() may be called from Python)
        log.handlers[:] = saved[0]
        log.setLevel(saved[1])
        log.propagate = saved[2]


def _main(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        args = _parse(argv)
        _configure_logging(args.quiet, args.verbose)
        from . import commands

        return getattr(commands, args.command)(args)
    except DeepBeliefError as exc:
        return _fail(str(exc), debug)
    except OSError as exc:  # unreadable input, unwritable output, full disk
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", debug)
    except ValueError as exc:  # a setting the library refused
        return _fail(str(exc), debug)
    except KeyboardInterrupt:
        print("deepbelief: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # a bug: still one line, unless --debug
        if debug:
            raise
        print(
            f"deepbelief: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
            "the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)  # --help and --version exit here (SystemExit 0)
    if args.command == "train" and args.config is not None:
        args = apply_config(parser, argv, read_config(args.config), args.config)
    return args


def _configure_logging(quiet: bool, verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.ERROR if quiet else logging.INFO if verbose else logging.WARNING)
    log.propagate = False


def _fail(message: str, debug: bool) -> int:
    if debug:
        raise
    line = " ".join(message.split())
    prefix = "" if line.startswith("deepbelief") else "deepbelief: error: "
    print(f"{prefix}{line}", file=sys.stderr)
    return 2


def print_json(payload: dict) -> None:
    """Write ``payload`` to standard output as one JSON document."""
    print(json.dumps(payload, indent=2, default=str))


def run() -> None:  # console-script entry point
    sys.exit(main())
