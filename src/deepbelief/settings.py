"""Training settings as dataclasses with declarative validation.

One definition of every training setting, its default and its valid values, shared by
:class:`deepbelief.training.RBMTrainer`, :func:`deepbelief.finetune.finetune`, the estimators
(which keep flat keyword arguments and build these in ``fit``, before touching any data) and
the command line. Like scikit-learn's ``_parameter_constraints``, each field names its rule;
:func:`check` applies it and raises a ``ValueError`` that names the setting and the value.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields

LR_SCHEDULES = ("constant", "linear", "cosine")
TASKS = ("classification", "regression")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class Rule:
    """What a setting accepts.

    Attributes
    ----------
    kind : {"int", "float", "bool", "choice"}
    low, high : float, optional
        The interval of numbers; ``low_open``/``high_open`` exclude its ends.
    choices : tuple, optional
        The values a ``"choice"`` setting accepts.
    optional : bool
        None is accepted too (the setting is off).
    """

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()
    optional: bool = False

    def describe(self) -> str:
        """The rule in words, as error messages give it."""
        if self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.kind == "bool":
            text = "True or False"
        else:
            text = "an integer" if self.kind == "int" else "a number"
            text += self._interval()
        return text + (" or None" if self.optional else "")

    def _interval(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f" in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f" {'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def accepts(self, value) -> bool:
        """Whether ``value`` satisfies the rule."""
        if value is None:
            return self.optional
        if self.kind == "choice":
            return isinstance(value, str) and value in self.choices
        if self.kind == "bool":
            return isinstance(value, (bool, numbers.Integral)) and value in (0, 1)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.kind == "int" and not float(value).is_integer():
            return False
        if not math.isfinite(value):
            return False
        return self._in_interval(value)

    def _in_interval(self, value) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return not (
            self.high is not None and (value >= self.high if self.high_open else value > self.high)
        )


def integer(low=None, **kw) -> Rule:
    return Rule("int", low=low, **kw)


def real(low=None, high=None, **kw) -> Rule:
    return Rule("float", low=low, high=high, **kw)


def choice(*choices, optional=False) -> Rule:
    return Rule("choice", choices=choices, optional=optional)


FLAG = Rule("bool")
PROBABILITY = real(0, 1, high_open=True)  # momenta, decays: [0, 1)


def check(name: str, value, rule: Rule, prefix: str = ""):
    """``value`` converted to the rule's type; ValueError naming ``name`` when it breaks it."""
    if not rule.accepts(value):
        raise ValueError(f"{prefix}{name} must be {rule.describe()}, got {value!r}")
    if value is None or rule.kind == "choice":
        return value
    return {"int": int, "float": float, "bool": bool}[rule.kind](value)


def setting(default, rule: Rule, doc: str = ""):
    """A dataclass field with its rule (and a one-line description) as metadata."""
    return field(default=default, metadata={"rule": rule, "doc": doc})


class _Validated:
    """Checks and converts every field against its rule after ``__init__``."""

    def __post_init__(self):
        for f in fields(self):
            rule = f.metadata.get("rule")
            if rule is not None:
                object.__setattr__(self, f.name, check(f.name, getattr(self, f.name), rule))
        self._check_together()

    def _check_together(self) -> None:
        """Rules that involve several settings."""

    def as_dict(self) -> dict:
        """The settings as a plain dict."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class LoopSettings(_Validated):
    """What every training loop has: epochs, minibatches and the learning-rate schedule."""

    epochs: int = setting(10, integer(0), "passes over the data")
    batch_size: int = setting(100, integer(1), "rows per update")
    learning_rate: float = setting(0.1, real(0, low_open=True), "initial step size")
    lr_schedule: str = setting("constant", choice(*LR_SCHEDULES), "per-update schedule")


@dataclass(frozen=True)
class RBMSettings(LoopSettings):
    """The settings of :class:`deepbelief.training.RBMTrainer` (documented there).

    ``lr_schedule`` also takes ``"auto"``: constant for CD, linear decay for PCD and PT.
    """

    lr_schedule: str = setting("auto", choice("auto", *LR_SCHEDULES))
    momentum: float = setting(0.5, PROBABILITY)
    final_momentum: float = setting(0.9, PROBABILITY)
    momentum_epochs: int = setting(5, integer(0))
    weight_decay: float = setting(2e-4, real(0))
    l1: float = setting(0.0, real(0))
    sparsity_target: float | None = setting(
        None, real(0, 1, low_open=True, high_open=True, optional=True)
    )
    sparsity_cost: float = setting(0.1, real(0))
    sparsity_decay: float = setting(0.95, PROBABILITY)
    max_norm: float | None = setting(None, real(0, low_open=True, optional=True))
    clip_grad_norm: float | None = setting(None, real(0, low_open=True, optional=True))
    monitor_rows: int = setting(1000, integer(0))
    monitor_every: int | None = setting(None, integer(1, optional=True))
    centering: bool = setting(False, FLAG)
    offset_decay: float = setting(0.99, PROBABILITY)
    init_visible_bias: bool = setting(True, FLAG)
    sample_data: bool = setting(False, FLAG)
    mixed_precision: bool = setting(False, FLAG)
    dropout: float = setting(0.0, PROBABILITY, "probability of dropping each hidden unit")


@dataclass(frozen=True)
class FinetuneSettings(LoopSettings):
    """The settings of :func:`deepbelief.finetune.finetune` (documented there)."""

    task: str = setting("classification", choice(*TASKS))
    epochs: int = setting(50, integer(0))
    optimizer: str = setting("sgd", choice(*OPTIMIZERS))
    momentum: float = setting(0.9, PROBABILITY)
    weight_decay: float = setting(0.0, real(0))
    max_norm: float | None = setting(None, real(0, low_open=True, optional=True))
    head_epochs: int = setting(0, integer(0))
    early_stopping: int | None = setting(None, integer(1, optional=True))
    average_epochs: int = setting(0, integer(0))
    mixed_precision: bool = setting(False, FLAG)

    def _check_together(self) -> None:
        if self.early_stopping is not None and self.average_epochs:
            raise ValueError(
                "average_epochs and early_stopping exclude each other: the one ends with the "
                "average of the last epochs, the other with the best epoch"
            )


@dataclass(frozen=True)
class SamplerSettings(_Validated):
    """How a named sampler is built (:func:`deepbelief.samplers.make_sampler`)."""

    sampler: str = setting("cd", choice("cd", "pcd", "pt"))
    k: int = setting(1, integer(1))
    n_chains: int | None = setting(None, integer(1, optional=True))
    n_temperatures: int = setting(10, integer(2))


#: The keyword arguments of :class:`deepbelief.training.RBMTrainer` that are settings.
TRAINER_SETTINGS = RBMSettings.names() + SamplerSettings.names()


def check_trainer_settings(settings: dict, where: str = "") -> None:
    """Validate a dict of :class:`deepbelief.training.RBMTrainer` settings (an estimator's
    per-layer settings) without building anything; ``where`` prefixes the message (e.g.
    ``"layer 2: "``). A Sampler object as ``sampler`` is accepted as it is."""
    unknown = sorted(set(settings) - set(TRAINER_SETTINGS))
    if unknown:
        raise ValueError(
            f"{where}unknown RBM training setting(s) {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(TRAINER_SETTINGS)}"
        )
    try:
        RBMSettings(**{k: v for k, v in settings.items() if k in RBMSettings.names()})
        named = {k: v for k, v in settings.items() if k in SamplerSettings.names()}
        if not isinstance(named.get("sampler", "cd"), str):
            named.pop("sampler")
        SamplerSettings(**named)
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None
