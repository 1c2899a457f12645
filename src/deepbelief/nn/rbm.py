"""The Restricted Boltzmann Machine as a PyTorch module."""

from __future__ import annotations

import numbers

import torch
from torch import nn

from ..io import register
from .units import BernoulliUnits, Units, units_from_config, units_from_spec


class BaseRBM(nn.Module):
    """What every RBM computes from its four field methods (``hidden_field``,
    ``visible_field``, ``hidden_input``, ``visible_input``), its unit types and its biases:
    conditionals, Gibbs steps, energies and free energies on flat rows of units. The dense
    :class:`RBM` and the convolutional :class:`deepbelief.nn.ConvRBM` are its subclasses.

    Subclasses set ``visible``, ``hidden`` (unit types), ``n_visible``, ``n_hidden``,
    ``visible_bias``, ``hidden_bias`` (one entry per unit), ``visible_logvar`` and
    ``hidden_logvar`` (None without learned variances).
    """

    @property
    def n_output(self) -> int:
        """Units the layer above sees (the hidden units; a pooling layer's pooling units)."""
        return self.n_hidden

    def output(self, v: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """What the layer above sees: the hidden means, or a sample of the hidden units."""
        return self.sample_hidden(v, generator=generator) if sample else self.hidden_mean(v)

    def output_to_hidden(self, p: torch.Tensor) -> torch.Tensor:
        """Hidden means for a down pass from the layer above (the same units here)."""
        return p

    def hidden_mean(self, v: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``E[h | v]``."""
        return self.hidden.mean(self.hidden_input(v, beta), self.hidden_logvar)

    def visible_mean(self, h: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``E[v | h]``."""
        return self.visible.mean(self.visible_input(h, beta), self.visible_logvar)

    def sample_hidden(self, v: torch.Tensor, beta=1.0, generator=None) -> torch.Tensor:
        """Draw ``h ~ p(h | v)``."""
        return self.hidden.sample(self.hidden_input(v, beta), self.hidden_logvar, generator)

    def sample_visible(self, h: torch.Tensor, beta=1.0, generator=None) -> torch.Tensor:
        """Draw ``v ~ p(v | h)``."""
        return self.visible.sample(self.visible_input(h, beta), self.visible_logvar, generator)

    def gibbs_step(self, v: torch.Tensor, beta=1.0, generator=None):
        """One step ``v -> h -> v'``; returns ``(h, v')``."""
        h = self.sample_hidden(v, beta, generator)
        return h, self.sample_visible(h, beta, generator)

    @torch.no_grad()
    def gibbs(self, v: torch.Tensor, k: int = 1, beta=1.0, generator=None) -> torch.Tensor:
        """Run ``k`` steps of block Gibbs sampling from ``v``; returns the visible states."""
        check_count("k", k, 0)
        for _ in range(int(k)):
            _, v = self.gibbs_step(v, beta, generator)
        return v

    def reconstruct(self, v: torch.Tensor) -> torch.Tensor:
        """Mean-field reconstruction ``E[v | h = E[h | v]]``."""
        return self.visible_mean(self.hidden_mean(v))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """What the layer above sees (:meth:`output`), so an RBM can stand in a feed-forward
        stack."""
        return self.output(v)

    # ----------------------------------------------------------------- energies
    def energy(self, v: torch.Tensor, h: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``E(v, h)`` of each row."""
        interaction = (
            self.hidden_field(v, beta) * self.hidden.statistic(h, self.hidden_logvar)
        ).sum(-1)
        return (
            self.visible.energy(v, self.visible_bias, self.visible_logvar)
            + self.hidden.energy(h, self.hidden_bias, self.hidden_logvar)
            - interaction
        )

    def interaction(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``s_v(v) @ W @ s_h(h)`` of each row (the part of the energy that ``beta`` scales)."""
        return (self.hidden_field(v) * self.hidden.statistic(h, self.hidden_logvar)).sum(-1)

    def free_energy(self, v: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``F(v) = -log sum_h exp(-E(v, h))`` of each row, numerically stable."""
        return self.free_energy_from_field(v, self.hidden_field(v, beta))

    def free_energy_from_field(self, v: torch.Tensor, hidden_field: torch.Tensor) -> torch.Tensor:
        """:meth:`free_energy` given an already computed :meth:`hidden_field` of ``v``."""
        return self.visible.energy(
            v, self.visible_bias, self.visible_logvar
        ) - self.hidden.log_partition(hidden_field, self.hidden_bias, self.hidden_logvar)

    def free_energy_hidden(self, h: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``F(h) = -log sum_v exp(-E(v, h))`` of each row (visible units summed out)."""
        return self.hidden.energy(
            h, self.hidden_bias, self.hidden_logvar
        ) - self.visible.log_partition(
            self.visible_field(h, beta), self.visible_bias, self.visible_logvar
        )

    def hidden_log_prob(self, h: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``log p(h | v)`` of each row (a density for continuous units)."""
        field = self.hidden_field(v)
        return conditional_log_prob(self.hidden, h, field, self.hidden_bias, self.hidden_logvar)

    def visible_log_prob(self, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``log p(v | h)`` of each row (a density for continuous units)."""
        field = self.visible_field(h)
        return conditional_log_prob(self.visible, v, field, self.visible_bias, self.visible_logvar)

    def support_error(self, v: torch.Tensor) -> str | None:
        """Why ``v`` is outside the visible units' support, or None."""
        return self.visible.support_error(v)


@register("nn.RBM")
class RBM(BaseRBM):
    """Restricted Boltzmann Machine with any pair of unit types.

    The energy is ``E(v, h) = E_v(v) + E_h(h) - s_v(v) @ W @ s_h(h)`` (see
    :mod:`deepbelief.nn.units`). Every method that involves the interaction accepts an inverse
    temperature ``beta`` that scales it: ``beta = 0`` gives independent units, ``beta = 1`` the
    model itself (used by parallel tempering and annealed importance sampling).

    Parameters
    ----------
    n_visible, n_hidden : int
        Number of visible and hidden units.
    visible, hidden : Units or str, default "bernoulli"
        Unit types of each layer.
    weight_std : float, default 0.01
        Standard deviation of the initial weights, N(0, weight_std^2) (Hinton's practical guide).
    generator : torch.Generator, optional
        Source of randomness for the initial weights.

    Attributes
    ----------
    weight : Parameter of shape (n_visible, n_hidden)
    visible_bias, hidden_bias : Parameters
    visible_logvar, hidden_logvar : Parameters, present only for learned-variance units
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        visible: Units | str = "bernoulli",
        hidden: Units | str = "bernoulli",
        weight_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        for value in (n_visible, n_hidden):
            if not _is_count(value, 1):
                raise ValueError(
                    f"an RBM needs a whole number of units, at least one per layer; got "
                    f"{n_visible!r}x{n_hidden!r}"
                )
        self.n_visible, self.n_hidden = int(n_visible), int(n_hidden)
        self.visible = units_from_spec(visible)
        self.hidden = units_from_spec(hidden)
        for layer, units, n in (("visible", self.visible, self.n_visible),
                                ("hidden", self.hidden, self.n_hidden)):  # fmt: skip
            width = _units_width(units)
            if width is not None and width != n:
                raise ValueError(f"{layer} units cover {width} units, but the layer has {n}")
        kw = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        weight = torch.randn(self.n_visible, self.n_hidden, generator=generator, **kw)
        self.weight = nn.Parameter(weight * weight_std)
        self.visible_bias = nn.Parameter(torch.zeros(self.n_visible, **kw))
        self.hidden_bias = nn.Parameter(torch.zeros(self.n_hidden, **kw))
        self.visible_logvar = (
            nn.Parameter(torch.zeros(self.n_visible, **kw)) if self.visible.has_logvar else None
        )
        self.hidden_logvar = (
            nn.Parameter(torch.zeros(self.n_hidden, **kw)) if self.hidden.has_logvar else None
        )

    # ----------------------------------------------------------------- description
    def config(self) -> dict:
        """JSON-serialisable constructor arguments (weights excluded)."""
        return {
            "n_visible": self.n_visible,
            "n_hidden": self.n_hidden,
            "visible": self.visible.config(),
            "hidden": self.hidden.config(),
        }

    @classmethod
    def from_config(cls, config: dict, **kw) -> RBM:
        """Build an RBM (with fresh weights) from :meth:`config`."""
        return cls(
            config["n_visible"],
            config["n_hidden"],
            visible=units_from_config(config["visible"]),
            hidden=units_from_config(config["hidden"]),
            **kw,
        )

    def _to_state(self) -> dict:
        return {"config": self.config(), "state_dict": dict(self.state_dict())}

    @classmethod
    def _from_state(cls, state: dict) -> RBM:
        model = cls.from_config(state["config"], dtype=state["state_dict"]["weight"].dtype)
        model.load_state_dict(state["state_dict"])
        return model

    def extra_repr(self) -> str:
        return f"{self.n_visible}x{self.n_hidden}, visible={self.visible}, hidden={self.hidden}"

    @torch.no_grad()
    def transposed(
        self,
        n_hidden: int | None = None,
        weight_std: float = 0.001,
        generator: torch.Generator | None = None,
    ) -> RBM:
        """The same model read upside down: hidden layer below, visible layer on top.

        Hinton, Osindero & Teh (2006) start each new layer of a DBN so: with ``W^T`` on top of
        ``W``, the DBN's distribution over the data is exactly this RBM's, and training the
        new layer on the posterior samples of the data raises the variational bound from there
        in expectation under exact maximum-likelihood learning; with PCD use a small learning
        rate (on MNIST, 100 epochs at 0.01 lost 0.86 nats of it). Extra hidden units
        (``n_hidden`` above this RBM's ``n_visible``; Bernoulli visible units only) start with
        weights N(0, ``weight_std``^2) and zero biases, so the marginal of the new visible
        layer is unchanged up to those small weights.

        Parameters
        ----------
        n_hidden : int, optional
            Hidden units of the new RBM; default (and minimum) this RBM's ``n_visible``.
        weight_std : float, default 0.001
        generator : torch.Generator, optional
            For the extra units' weights.
        """
        n_hidden = self.n_visible if n_hidden is None else int(n_hidden)
        extra = n_hidden - self.n_visible
        if extra < 0 or (extra and not isinstance(self.visible, BernoulliUnits)):
            raise ValueError(
                f"transposed needs n_hidden >= {self.n_visible} (more only for Bernoulli "
                f"visible units), got {n_hidden}"
            )
        kw = {"dtype": self.weight.dtype, "device": self.weight.device}
        top = RBM(self.n_hidden, n_hidden, visible=self.hidden, hidden=self.visible, **kw)
        weight = torch.randn(self.n_hidden, n_hidden, generator=generator, **kw) * weight_std
        weight[:, : self.n_visible] = self.weight.t()
        top.weight.copy_(weight)
        top.visible_bias.copy_(self.hidden_bias)
        top.hidden_bias.zero_()
        top.hidden_bias[: self.n_visible] = self.visible_bias
        if self.hidden_logvar is not None:
            top.visible_logvar.copy_(self.hidden_logvar)
        if self.visible_logvar is not None:
            top.hidden_logvar.copy_(self.visible_logvar)
        return top

    # ----------------------------------------------------------------- conditionals
    def hidden_field(self, v: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``beta * s_v(v) @ W``: what the visible layer sends to the hidden layer."""
        field = self.visible.statistic(v, self.visible_logvar) @ self.weight
        return field if _is_one(beta) else beta * field

    def visible_field(self, h: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``beta * W @ s_h(h)``: what the hidden layer sends to the visible layer."""
        field = self.hidden.statistic(h, self.hidden_logvar) @ self.weight.t()
        return field if _is_one(beta) else beta * field

    def hidden_input(self, v: torch.Tensor, beta=1.0) -> torch.Tensor:
        """Total input of the hidden units, ``hidden_bias + beta * s_v(v) @ W``."""
        s = self.visible.statistic(v, self.visible_logvar)
        if _is_one(beta):
            return self._full(torch.addmm(self.hidden_bias, s, self.weight))
        return self.hidden_bias + beta * self._full(s @ self.weight)

    def visible_input(self, h: torch.Tensor, beta=1.0) -> torch.Tensor:
        """Total input of the visible units, ``visible_bias + beta * W @ s_h(h)``."""
        s = self.hidden.statistic(h, self.hidden_logvar)
        if _is_one(beta):
            return self._full(torch.addmm(self.visible_bias, s, self.weight.t()))
        return self.visible_bias + beta * self._full(s @ self.weight.t())

    def _full(self, x: torch.Tensor) -> torch.Tensor:
        """Products computed in lower precision (under ``torch.autocast``) come back in the
        parameters' dtype, so that unit means and sampling keep their full precision."""
        return x if x.dtype == self.weight.dtype else x.to(self.weight.dtype)

    @torch.no_grad()
    def limit_norms_(self, max_norm: float) -> None:
        """Scale down every hidden unit's incoming weight vector whose L2 norm exceeds
        ``max_norm``."""
        norms = self.weight.norm(dim=0, keepdim=True)
        self.weight.mul_(torch.clamp(max_norm / (norms + 1e-12), max=1.0))

    def macs_per_row(self) -> int:
        """Multiply-adds of one hidden field (a cost measure for time budgets)."""
        return self.n_visible * self.n_hidden

    @torch.no_grad()
    def init_visible_bias_from_data(self, data: torch.Tensor, eps: float = 1e-3) -> None:
        """Set the visible biases from the data (Hinton's practical guide, section 8).

        Bernoulli units get ``log(p / (1 - p))`` of the data means; Gaussian units the data
        means (learned log-variances stay at 0: unit variance, as for standardised data).
        """
        mean = data.mean(0)
        if isinstance(self.visible, BernoulliUnits):
            p = mean.clamp(eps, 1 - eps)
            self.visible_bias.copy_(torch.log(p) - torch.log1p(-p))
        elif self.visible.name == "gaussian":
            self.visible_bias.copy_(mean)


def conditional_log_prob(units, state, field, bias, logvar) -> torch.Tensor:
    """``log p(state | field) = -E(state) + s(state) . field - log_partition(field)``."""
    return (
        -units.energy(state, bias, logvar)
        + (units.statistic(state, logvar) * field).sum(-1)
        - units.log_partition(field, bias, logvar)
    )


def _is_one(beta) -> bool:
    return isinstance(beta, (int, float)) and beta == 1


def _is_count(value, low: int) -> bool:
    """Whether ``value`` is a whole number (an int, or an integral float) of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return float(value).is_integer() and value >= low


def check_count(name: str, value, low: int) -> int:
    """``value`` as an int; ValueError naming ``name`` unless it is a whole number >= ``low``."""
    if not _is_count(value, low):
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")
    return int(value)


def _units_width(units) -> int | None:
    """How many units ``units`` describe when they say (softmax groups, mixed parts)."""
    sizes = getattr(units, "group_sizes", None) or getattr(units, "sizes", None)
    return None if not sizes else int(sum(sizes))
