"""The Deep Belief Network as a PyTorch module: a stack of RBMs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.utils.parametrize as parametrize
from torch import nn
from torch.nn.utils import skip_init

from ..io import register
from .conv import ConvRBM, conv_feedforward, layer_from_config
from .layers import Dropout
from .rbm import RBM, check_count, conditional_log_prob
from .units import MixedUnits, SoftmaxUnits, Units, units_from_spec

_ACTIVATIONS = {"bernoulli": nn.Sigmoid, "relu": nn.ReLU, "gaussian": nn.Identity}


class _Transpose(nn.Module):
    """Parametrization: a Linear layer's (out, in) weight as the transpose of an RBM's (in, out)."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.t()


class _VarianceScale(nn.Module):
    """Divides inputs by the visible units' learned variances (their statistic ``v / sigma^2``)."""

    def __init__(self, logvar: nn.Parameter):
        super().__init__()
        self.logvar = logvar

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.exp(-self.logvar)


def tied_linear(rbm: RBM) -> nn.Linear:
    """An ``nn.Linear`` whose weight and bias ARE the RBM's ``weight`` (transposed view) and
    ``hidden_bias``: training it trains the RBM, nothing is copied."""
    # skip_init: nn.Linear's own initialisation would draw from torch's global random stream
    linear = skip_init(
        nn.Linear, rbm.n_visible, rbm.n_hidden, device=rbm.weight.device, dtype=rbm.weight.dtype
    )
    del linear.weight, linear.bias
    linear.weight = rbm.weight
    linear.bias = rbm.hidden_bias
    parametrize.register_parametrization(linear, "weight", _Transpose(), unsafe=True)
    return linear


def activation_for(units: Units) -> nn.Module:
    """The feed-forward activation that computes (or approximates) a layer's mean."""
    if units.name not in _ACTIVATIONS:
        raise ValueError(f"no feed-forward activation for {units.name} hidden units")
    return _ACTIVATIONS[units.name]()


@register("nn.DBN")
class DBN(nn.Module):
    """A Deep Belief Network: RBMs stacked so each one's hidden layer is the next one's visible.

    With ``n_labels > 0`` the top RBM's visible layer is the penultimate hidden layer joined
    with a softmax group of label units (Hinton, Osindero & Teh 2006): the generative model of
    inputs and their classes.

    Parameters
    ----------
    rbms : sequence of deepbelief.nn.RBM or deepbelief.nn.ConvRBM
        Bottom first, conv layers (if any) below the dense ones. ``rbms[i].n_output`` (the
        hidden units; a pooling conv layer's pooling units) must equal
        ``rbms[i + 1].n_visible`` (minus ``n_labels`` for the top RBM).
    n_labels : int, default 0
    """

    def __init__(self, rbms: Sequence[RBM], n_labels: int = 0):
        super().__init__()
        if not rbms:
            raise ValueError("a DBN needs at least one RBM")
        self.rbms = nn.ModuleList(rbms)
        self.n_labels = int(n_labels)
        if self.n_labels < 0:
            raise ValueError(f"n_labels must be >= 0, got {n_labels}")
        if self.n_labels and len(self.rbms) == 1 and self.rbms[0].n_visible <= self.n_labels:
            raise ValueError(
                f"a classification RBM needs input units besides its {self.n_labels} labels; "
                f"it has {self.rbms[0].n_visible} visible units"
            )
        _check_conv_layers(self.rbms, self.n_labels)
        for i, (below, above) in enumerate(zip(self.rbms, self.rbms[1:])):
            expected = below.n_output + (self.n_labels if i + 1 == len(self.rbms) - 1 else 0)
            if above.n_visible != expected:
                raise ValueError(
                    f"RBM {i + 1} has {above.n_visible} visible units; expected {expected} "
                    f"(the {below.n_output} output units of RBM {i}"
                    + (f" plus {self.n_labels} labels)" if expected != below.n_output else ")")
                )
        self.generative_weights: nn.ParameterList | None = None
        self.generative_biases: nn.ParameterList | None = None

    @torch.no_grad()
    def random_init_(self, generator: torch.Generator | None = None, start: int = 0) -> DBN:
        """Re-initialise every RBM's (from index ``start`` up) weights and hidden biases for
        training without pretraining: weights uniform on (-b, b), with Glorot & Bengio's (2010)
        b = sqrt(6 / (fan_in + fan_out)), times 4 for sigmoid (Bernoulli) hidden units and
        He's b = sqrt(6 / fan_in) for ReLU ones; zero biases, except a max-pooled conv
        layer's map biases, -log(pool * pool): each block's pooling unit then starts where a
        sigmoid at 0 is (output 1/2, slope 1/4 in the block's log-sum-exp), so it takes the
        sigmoid's factor 4 too. (With zero biases a 2x2 block starts at 4/5 with a fifth of
        that slope, and the preset lee2009's CNN on 1,000 MNIST labels stayed at chance: 90 %
        test error, against 5.4 % from this start.) The feed-forward baseline that
        pretraining is compared with. Returns ``self``.
        """
        for rbm in self.rbms[start:]:
            pool = getattr(rbm, "pool", 1)
            if isinstance(rbm, ConvRBM):  # torch's fans of a convolution
                receptive = rbm.weight[0, 0].numel()
                fan_in, fan_out = rbm.weight.shape[1] * receptive, rbm.n_filters * receptive
            else:
                fan_in, fan_out = rbm.n_visible, rbm.n_hidden
            bound = (6.0 / (fan_in + fan_out)) ** 0.5
            if rbm.hidden.name in ("bernoulli", "maxpool_bernoulli"):
                bound *= 4.0
            elif rbm.hidden.name == "relu":
                bound = (6.0 / fan_in) ** 0.5
            w = rbm.weight
            u = torch.rand(w.shape, generator=generator, dtype=w.dtype, device=w.device)
            w.copy_((2 * u - 1) * bound)
            bias = rbm.map_bias if isinstance(rbm, ConvRBM) else rbm.hidden_bias
            bias.fill_(-math.log(pool * pool))
        return self

    @property
    def untied(self) -> bool:
        """True once :meth:`untie` gave the layers below the top their own generative weights."""
        return self.generative_weights is not None

    @torch.no_grad()
    def untie(self) -> None:
        """Give each layer below the top RBM separate generative (top-down) weights and biases,
        starting as copies of the tied ones, as the up-down algorithm needs. The RBMs' own
        weights become the recognition (bottom-up) weights."""
        if self.untied:
            return
        if self.conv_layers:
            raise ValueError("up-down fine-tuning needs dense layers; this DBN has conv layers")
        lower = self.rbms[:-1]
        self.generative_weights = nn.ParameterList(
            [nn.Parameter(r.weight.detach().clone()) for r in lower]
        )
        self.generative_biases = nn.ParameterList(
            [nn.Parameter(r.visible_bias.detach().clone()) for r in lower]
        )

    def generative_input(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """Total input of RBM ``layer``'s visible units given ``h`` under the generative
        (top-down) weights: the RBM's own when tied, the untied ones after :meth:`untie`."""
        rbm = self.rbms[layer]
        if not self.untied:
            return rbm.visible_input(rbm.output_to_hidden(h))
        weight, bias = self.generative_weights[layer], self.generative_biases[layer]
        return torch.addmm(bias, rbm.hidden.statistic(h, rbm.hidden_logvar), weight.t())

    def generative_mean(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """``E[v | h]`` of RBM ``layer``'s visible units under the generative weights."""
        rbm = self.rbms[layer]
        return rbm.visible.mean(self.generative_input(layer, h), rbm.visible_logvar)

    def generative_log_prob(self, layer: int, v: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``log p(v | h)`` of each row for RBM ``layer``'s visible units under the generative
        weights (the directed part of the DBN below the top RBM)."""
        rbm = self.rbms[layer]
        if not self.untied:
            return rbm.visible_log_prob(v, h)
        weight, bias = self.generative_weights[layer], self.generative_biases[layer]
        field = rbm.hidden.statistic(h, rbm.hidden_logvar) @ weight.t()
        return conditional_log_prob(rbm.visible, v, field, bias, rbm.visible_logvar)

    def top_log_density(self, features: torch.Tensor) -> torch.Tensor:
        """``-F(features)`` of the top RBM: the unnormalised log-probability of the
        penultimate layer, with the label units summed out when the DBN has them."""
        top = self.rbms[-1]
        if not self.n_labels:
            return -top.free_energy(features)
        n = len(features)
        per_label = [
            -top.free_energy(
                self.top_visible(features, torch.full((n,), c, device=features.device))
            )
            for c in range(self.n_labels)
        ]
        return torch.logsumexp(torch.stack(per_label, 1), 1)

    def generative_sample(self, layer: int, h: torch.Tensor, generator=None) -> torch.Tensor:
        """A sample of RBM ``layer``'s visible units given ``h`` under the generative weights."""
        rbm = self.rbms[layer]
        x = self.generative_input(layer, h)
        return rbm.visible.sample(x, rbm.visible_logvar, generator)

    @classmethod
    def from_sizes(
        cls,
        sizes: Sequence[int],
        visible: Units | str = "bernoulli",
        hidden: Units | str | Sequence = "bernoulli",
        n_labels: int = 0,
        generator: torch.Generator | None = None,
        **rbm_kw,
    ) -> DBN:
        """Build a DBN from layer sizes ``[n_visible, h1, h2, ...]``.

        ``hidden`` is one unit type for every hidden layer or one per hidden layer.
        """
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must hold the input size and >= 1 hidden size, got {sizes}")
        hidden_units = (
            [units_from_spec(h) for h in hidden]
            if isinstance(hidden, (list, tuple))
            else [units_from_spec(hidden)] * (len(sizes) - 1)
        )
        if len(hidden_units) != len(sizes) - 1:
            raise ValueError(f"{len(hidden_units)} hidden unit types for {len(sizes) - 1} layers")
        rbms = []
        below = units_from_spec(visible)
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            if n_labels and i == len(sizes) - 2:
                below = MixedUnits([(below, n_in), (SoftmaxUnits(), n_labels)])
                n_in += n_labels
            rbms.append(RBM(n_in, n_out, below, hidden_units[i], generator=generator, **rbm_kw))
            below = hidden_units[i]
        return cls(rbms, n_labels=n_labels)

    def config(self) -> dict:
        return {
            "rbms": [rbm.config() for rbm in self.rbms],
            "n_labels": self.n_labels,
            "untied": self.untied,
        }

    def _to_state(self) -> dict:
        return {"config": self.config(), "state_dict": dict(self.state_dict())}

    @classmethod
    def _from_state(cls, state: dict) -> DBN:
        dtype = state["state_dict"]["rbms.0.weight"].dtype
        rbms = [layer_from_config(c, dtype=dtype) for c in state["config"]["rbms"]]
        dbn = cls(rbms, n_labels=state["config"]["n_labels"])
        if state["config"].get("untied"):
            dbn.untie()
        dbn.load_state_dict(state["state_dict"])
        return dbn

    @property
    def sizes(self) -> list[int]:
        """``[n_visible, h1, h2, ...]``: each layer's output units (label units not counted)."""
        return [self.rbms[0].n_visible] + [rbm.n_output for rbm in self.rbms]

    @property
    def conv_layers(self) -> int:
        """How many of the bottom layers are :class:`~deepbelief.nn.ConvRBM`."""
        return sum(isinstance(rbm, ConvRBM) for rbm in self.rbms)

    # ------------------------------------------------------------------ passes
    def _label_block(self, n: int, labels: torch.Tensor | None, like: torch.Tensor):
        block = torch.zeros(n, self.n_labels, dtype=like.dtype, device=like.device)
        if labels is not None:
            block[torch.arange(n, device=like.device), labels.to(like.device)] = 1.0
        return block

    def top_visible(self, features: torch.Tensor, labels: torch.Tensor | None = None):
        """The top RBM's visible vector: penultimate features, joined with one-hot ``labels``
        (all zeros when None) for a DBN with label units."""
        if not self.n_labels:
            return features
        return torch.cat([features, self._label_block(len(features), labels, features)], 1)

    @torch.no_grad()
    def transform(self, x: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """Up pass of means: the activations of hidden layer ``layer`` (1-based from the bottom;
        ``-1`` the top). With label units, the top layer sees its label units off."""
        n_layers = len(self.rbms)
        layer = n_layers if layer == -1 else int(layer)
        if not 0 <= layer <= n_layers:
            raise ValueError(f"layer must lie in 0..{n_layers} or be -1, got {layer}")
        for i, rbm in enumerate(self.rbms[:layer]):
            if i == n_layers - 1:
                x = self.top_visible(x)
            x = rbm.output(x)
        return x

    @torch.no_grad()
    def down(self, h: torch.Tensor, from_layer: int | None = None) -> torch.Tensor:
        """Down pass of means from hidden layer ``from_layer`` (default: the penultimate, the
        top RBM's visible features) to the visible layer."""
        start = len(self.rbms) - 1 if from_layer is None else int(from_layer)
        if start == len(self.rbms):  # from the top hidden layer: through the top RBM first
            top = self.rbms[-1]
            h = top.visible_mean(h)[:, : top.n_visible - self.n_labels]
            start -= 1
        for layer in reversed(range(start)):
            h = self.generative_mean(layer, h)
        return h

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Up pass to the top hidden layer, then down pass of means to the visible layer."""
        top = self.rbms[-1]
        v_top = top.visible_mean(self.transform(x))
        if self.n_labels:
            v_top = v_top[:, : top.n_visible - self.n_labels]
        return self.down(v_top)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        gibbs_steps: int = 1000,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        start: torch.Tensor | None = None,
        return_labels: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` samples: ``gibbs_steps`` of Gibbs sampling in the top RBM (label units
        clamped to ``labels`` when given), then a down pass of means. With ``return_labels``
        (a DBN with label units), also each sample's class index: the given ``labels``, or
        the label units' state at the chains' last step.

        Parameters
        ----------
        labels : tensor of int64 class indices, shape (n,), optional
            Only for a DBN with label units.
        start : tensor, shape (n, n_features), optional
            The chains' first state of the top RBM's visible features (means are fine; the
            first step samples the hidden units from them). Default: a draw from the top
            RBM's visible biases.
        """
        top = self.rbms[-1]
        n, gibbs_steps = check_count("n", n, 1), check_count("gibbs_steps", gibbs_steps, 0)
        if labels is not None and not self.n_labels:
            raise ValueError("this DBN has no label units; it cannot generate by class")
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != (n,) or labels.is_floating_point():
                raise ValueError(f"labels must be {n} integer class indices, got shape "
                                 f"{tuple(labels.shape)} of {labels.dtype}")  # fmt: skip
            if len(labels) and not (0 <= int(labels.min()) and int(labels.max()) < self.n_labels):
                raise ValueError(f"labels must lie in [0, {self.n_labels}), got "
                                 f"{int(labels.min())}..{int(labels.max())}")  # fmt: skip
        kw = {"dtype": top.weight.dtype, "device": top.weight.device}
        n_features = top.n_visible - self.n_labels
        if start is None:
            x = top.visible_bias.detach().expand(int(n), -1).clone().to(**kw)
            v = top.visible.sample(x, top.visible_logvar, generator)
        else:
            if tuple(start.shape) != (int(n), n_features):
                raise ValueError(f"start must have shape ({n}, {n_features}), got {start.shape}")
            v = self.top_visible(start.to(**kw))
        clamp = self._label_block(int(n), labels, v) if labels is not None else None
        for _ in range(int(gibbs_steps)):
            if clamp is not None:
                v = torch.cat([v[:, :n_features], clamp], 1)
            v = top.sample_visible(top.sample_hidden(v, generator=generator), generator=generator)
        h = top.sample_hidden(
            torch.cat([v[:, :n_features], clamp], 1) if clamp is not None else v,
            generator=generator,
        )
        features = top.visible_mean(h)[:, :n_features]
        if not return_labels:
            return self.down(features)
        if not self.n_labels:
            raise ValueError("this DBN has no label units; it has no labels to return")
        drawn = labels if labels is not None else v[:, n_features:].argmax(1)
        return self.down(features), drawn

    @property
    def classification_rbm(self) -> bool:
        """One RBM whose visible layer is the input joined with label units (Larochelle &
        Bengio 2008)."""
        return bool(self.n_labels) and len(self.rbms) == 1

    @property
    def input_units(self) -> Units:
        """The units of the input (without a classification RBM's label units)."""
        visible = self.rbms[0].visible
        return visible.parts[0][0] if self.classification_rbm else visible

    def input_free_energy(self, x: torch.Tensor) -> torch.Tensor:
        """The bottom RBM's free energy of the inputs ``x``; for a classification RBM, with the
        labels summed out (``-log sum_y exp(-F(x, y))``)."""
        if self.classification_rbm:
            return -torch.logsumexp(-self.label_free_energies(x), 1)
        return self.rbms[0].free_energy(x)

    @torch.no_grad()
    def label_free_energies(self, x: torch.Tensor) -> torch.Tensor:
        """Free energy of the top RBM with each label switched on in turn, shape
        (n, n_labels); ``softmax(-F)`` is ``p(label | x)`` of the generative model."""
        if not self.n_labels:
            raise ValueError("this DBN has no label units")
        features = self.transform(x, layer=len(self.rbms) - 1)
        n = len(features)
        energies = []
        for c in range(self.n_labels):
            labels = torch.full((n,), c, dtype=torch.long, device=features.device)
            energies.append(self.rbms[-1].free_energy(self.top_visible(features, labels)))
        return torch.stack(energies, 1)

    # ------------------------------------------------------------------ unfolding
    def to_feedforward(
        self,
        head: str | nn.Module | None = None,
        n_outputs: int = 1,
        dropout: float = 0.0,
        input_dropout: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> nn.Sequential:
        """The up pass as a plain ``nn.Sequential`` whose Linear layers share the RBMs'
        Parameters (the same tensors, not copies), for backprop fine-tuning.

        Parameters
        ----------
        head : {"classification", "regression"}, nn.Module or None
            A new Linear output layer of ``n_outputs`` units (softmax logits for classes, a
            linear output for targets), a module of your own, or none.
        dropout, input_dropout : float
            Dropout after each dense hidden layer and on the input
            (:class:`deepbelief.nn.layers.Dropout`, drawing from ``generator``).
        """
        if self.n_labels:
            raise ValueError("a DBN with label units classifies generatively; unfold a DBN without")
        if isinstance(head, str):
            check_count("n_outputs", n_outputs, 1)
        layers: list[nn.Module] = []
        if input_dropout:
            layers.append(Dropout(input_dropout, generator))
        convs = self.rbms[: self.conv_layers]
        if convs:  # flat rows in, images through the conv layers, flat rows out
            layers.append(nn.Unflatten(1, convs[0].image_shape))
            for rbm in convs:
                layers += conv_feedforward(rbm)
            layers.append(nn.Flatten())
        for rbm in self.rbms[self.conv_layers :]:
            if rbm.visible_logvar is not None:  # the statistic v / sigma^2 enters the weights
                layers.append(_VarianceScale(rbm.visible_logvar))
            layers += [tied_linear(rbm), activation_for(rbm.hidden)]
            if dropout:
                layers.append(Dropout(dropout, generator))
        if isinstance(head, str):
            if head not in ("classification", "regression"):
                raise ValueError(
                    f"head must be 'classification', 'regression' or a module, not {head!r}"
                )
            top = self.rbms[-1]
            linear = skip_init(
                nn.Linear,
                top.n_output,
                int(n_outputs),
                dtype=top.weight.dtype,
                device=top.weight.device,
            )
            with torch.no_grad():
                w = torch.randn(
                    linear.weight.shape,
                    generator=generator,
                    dtype=linear.weight.dtype,
                    device=linear.weight.device if generator is None else generator.device,
                )
                linear.weight.copy_(w * 0.01)
                linear.bias.zero_()
            layers.append(linear)
        elif head is not None:
            layers.append(head)
        return nn.Sequential(*layers)


def _check_conv_layers(rbms, n_labels: int) -> None:
    """Conv layers sit at the bottom, each seeing the maps of the one below; labels join a
    dense top."""
    n_conv = sum(isinstance(rbm, ConvRBM) for rbm in rbms)
    if any(not isinstance(rbm, ConvRBM) for rbm in rbms[:n_conv]):
        raise ValueError("conv layers must come first, below every dense layer")
    for i, (below, above) in enumerate(zip(rbms[: n_conv - 1], rbms[1:n_conv])):
        if above.image_shape != below.output_shape:
            raise ValueError(
                f"conv layer {i + 1} takes images of {above.image_shape}; conv layer {i} gives "
                f"maps of {below.output_shape}"
            )
    if n_labels and isinstance(rbms[-1], ConvRBM):
        raise ValueError("label units join a dense top RBM; this DBN's top is a conv layer")


@register("nn.ConvDBN")
class ConvDBN(DBN):
    """A convolutional DBN (Lee, Grosse, Ranganath & Ng 2009): conv RBMs at the bottom, dense
    RBMs (optionally) on top; a :class:`DBN` whose first layers are
    :class:`~deepbelief.nn.ConvRBM`, pretrained greedily and unfolded the same way
    (:meth:`to_feedforward` gives ``Conv2d`` layers sharing the conv RBMs' Parameters).

    Parameters
    ----------
    rbms : sequence of ConvRBM, then RBM
        At least one ConvRBM.
    n_labels : int, default 0
    """

    def __init__(self, rbms, n_labels: int = 0):
        if not rbms or not isinstance(rbms[0], ConvRBM):
            raise ValueError("a ConvDBN's first layer is a ConvRBM")
        super().__init__(rbms, n_labels)

    @classmethod
    def from_specs(
        cls,
        image_shape,
        conv_layers,
        hidden_layers=(),
        visible: Units | str = "bernoulli",
        hidden: Units | str | Sequence = "bernoulli",
        generator: torch.Generator | None = None,
        **rbm_kw,
    ) -> ConvDBN:
        """Build from an image shape ``(channels, height, width)``, conv layer specs
        ``(n_filters, kernel_size, pool)`` bottom first, and dense hidden layer sizes on top
        (``hidden``: their unit type, or one per dense layer).
        """
        rbms: list[nn.Module] = []
        shape = tuple(image_shape)
        for i, spec in enumerate(conv_layers):
            n_filters, kernel, pool = spec
            units = visible if i == 0 else "bernoulli"
            rbm = ConvRBM(shape, n_filters, kernel, pool, units, generator=generator, **rbm_kw)
            rbms.append(rbm)
            shape = rbm.output_shape
        below: Units | str = "bernoulli"
        n_in = rbms[-1].n_output if rbms else math.prod(shape)
        units = hidden if isinstance(hidden, (list, tuple)) else [hidden] * len(hidden_layers)
        for n_out, kind in zip(hidden_layers, units, strict=True):
            rbms.append(RBM(n_in, n_out, below, kind, generator=generator, **rbm_kw))
            below, n_in = kind, n_out
        return cls(rbms)
