"""Convolutional RBMs with probabilistic max-pooling (Lee, Grosse, Ranganath & Ng 2009).

A :class:`ConvRBM` shares its filters across positions: hidden map ``k`` sees the image
through filter ``k`` (``conv2d``), the image hears every map back through the same filters
(``conv_transpose2d``). Its units are kept as flat rows, as the dense RBM's are (channels,
then rows, then columns), so the samplers, the fit loop and the exact evaluation of
:mod:`deepbelief.evaluation` serve both.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..io import register
from .rbm import RBM, BaseRBM
from .units import BernoulliUnits, GaussianUnits, Units, units_from_config, units_from_spec


class MaxPoolBernoulliUnits(Units):
    """Binary detection units pooled by probabilistic max-pooling.

    The units of each ``pool x pool`` block of a feature map form a softmax group with an
    extra "off" state: at most one of them is on, ``p(h_i = 1) = exp(x_i) / (1 + sum_j
    exp(x_j))``, and the block's pooling unit is on when one of them is, with probability
    ``1 - 1 / (1 + sum_j exp(x_j))``. States are flat rows of ``n_maps x height x width``.

    Parameters
    ----------
    n_maps : int
    map_shape : (int, int)
        Height and width of each detection map; both divisible by ``pool``.
    pool : int
    """

    name = "maxpool_bernoulli"
    discrete = True

    def __init__(self, n_maps: int, map_shape, pool: int):
        self.n_maps, self.pool = int(n_maps), int(pool)
        self.map_shape = tuple(int(s) for s in map_shape)
        if self.pool < 1 or any(s % self.pool for s in self.map_shape):
            raise ValueError(
                f"feature maps of {self.map_shape[0]}x{self.map_shape[1]} cannot be pooled in "
                f"blocks of {pool}x{pool}: the pool size must divide both sides"
            )
        self.pooled_shape = tuple(s // self.pool for s in self.map_shape)

    def config(self) -> dict:
        return {
            "type": self.name,
            "n_maps": self.n_maps,
            "map_shape": list(self.map_shape),
            "pool": self.pool,
        }

    @property
    def n_blocks(self) -> int:
        return self.n_maps * math.prod(self.pooled_shape)

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        """Flat rows ``(..., n_maps * height * width)`` as ``(rows, blocks, pool * pool)``."""
        (hp, wp), p = self.pooled_shape, self.pool
        grid = x.reshape(-1, self.n_maps, hp, p, wp, p).permute(0, 1, 2, 4, 3, 5)
        return grid.reshape(-1, self.n_blocks, p * p)

    def unblocks(self, b: torch.Tensor, lead: torch.Size) -> torch.Tensor:
        """The inverse of :meth:`blocks`, back to flat rows with leading shape ``lead``."""
        (hp, wp), p = self.pooled_shape, self.pool
        grid = b.reshape(-1, self.n_maps, hp, wp, p, p).permute(0, 1, 2, 4, 3, 5)
        return grid.reshape(*lead, -1)

    def _grid(self, x: torch.Tensor) -> torch.Tensor:
        """A view of flat rows as ``(rows, maps, block row, row in block, block column,
        column in block)``: a block is dimensions 3 and 5 (no copy)."""
        (hp, wp), p = self.pooled_shape, self.pool
        return x.reshape(-1, self.n_maps, hp, p, wp, p)

    def _block_terms(self, x: torch.Tensor):
        """``(exp(x - m), exp(-m), z, m)``: ``m`` each block's largest logit (the "off"
        state's 0 included; a constant for autograd), ``z`` the sum of the exponentials with
        "off"'s. Blocks as ``(rows, maps, block row, 1, block column, 1)``, units as
        :meth:`_grid`; the reductions are pooling kernels (a reduction over a view's
        strided dimensions is several times slower)."""
        p = self.pool
        maps = x.reshape(-1, self.n_maps, *self.map_shape)
        m = F.max_pool2d(maps.detach(), p).clamp_min_(0)
        e = torch.exp(self._grid(x) - m[:, :, :, None, :, None])
        total = F.avg_pool2d(e.reshape(maps.shape), p, divisor_override=1)
        off = torch.exp(-m)
        return e, off[:, :, :, None, :, None], (total + off)[:, :, :, None, :, None], m

    def mean(self, x, logvar=None):
        e, _, z, _ = self._block_terms(x)
        return (e / z).reshape(x.shape)

    def sample(self, x, logvar=None, generator=None):
        return self.sample_given_mean(self.mean(x), generator)

    def sample_given_mean(self, mean: torch.Tensor, generator=None) -> torch.Tensor:
        """A state drawn given :meth:`mean` (one uniform per block, as :meth:`sample`)."""
        probs = self._grid(mean)
        (hp, wp), p = self.pooled_shape, self.pool
        shape = (probs.shape[0], self.n_maps, hp, 1, wp, 1)
        u = torch.rand(shape, generator=generator, dtype=mean.dtype, device=mean.device)
        state, below = torch.zeros_like(probs), torch.zeros_like(u)
        for i, j in itertools.product(range(p), repeat=2):  # the block's units in turn
            unit = probs[:, :, :, i : i + 1, :, j : j + 1]
            state[:, :, :, i : i + 1, :, j : j + 1] = (u >= below) & (u < below + unit)
            below += unit
        return state.reshape(mean.shape)

    def energy(self, state, bias, logvar=None):
        return -(state * bias).sum(-1)

    def log_partition(self, field, bias, logvar=None):
        _, _, z, m = self._block_terms(field + bias)
        return (m + torch.log(z.reshape(m.shape))).reshape(*field.shape[:-1], -1).sum(-1)

    def pooled_mean(self, x: torch.Tensor) -> torch.Tensor:
        """``p(pooling unit on)`` of each block given the detection units' inputs ``x``."""
        _, off, z, _ = self._block_terms(x)
        return (1 - off / z).reshape(*x.shape[:-1], self.n_blocks)

    def pooled_state(self, h: torch.Tensor) -> torch.Tensor:
        """The pooling units of detection states ``h`` (on where a unit of the block is)."""
        maps = h.reshape(-1, self.n_maps, *self.map_shape)
        pooled = F.avg_pool2d(maps, self.pool, divisor_override=1)
        return pooled.reshape(*h.shape[:-1], self.n_blocks)

    def spread(self, p: torch.Tensor) -> torch.Tensor:
        """Detection means for pooling means ``p`` alone: each block's units share its
        probability evenly (what is known of them without the layer below)."""
        (hp, wp), size = self.pooled_shape, self.pool
        each = p.reshape(-1, self.n_maps, hp, 1, wp, 1) / (size * size)
        return each.expand(-1, -1, -1, size, -1, size).reshape(*p.shape[:-1], -1)

    def states(self, n, **tensor_kw):
        if n != self.n_blocks * self.pool**2:
            raise ValueError(f"these units number {self.n_blocks * self.pool**2}, not {n}")
        size = self.pool**2
        choices = torch.eye(size + 1, **tensor_kw)[:, :size]  # one unit on, or none
        rows = [
            torch.cat([choices[i] for i in combo])
            for combo in itertools.product(range(size + 1), repeat=self.n_blocks)
        ]
        flat = torch.stack(rows)  # blocks in order: back to the maps' layout
        return self.unblocks(flat.reshape(len(rows), self.n_blocks, size), flat.shape[:-1])

    def n_states(self, n):
        return float(self.pool**2 + 1) ** self.n_blocks

    def support_error(self, x, column_offset=0):
        binary = BernoulliUnits().support_error(x, column_offset)
        if binary is not None:
            return binary
        if (self.blocks(x).sum(-1) > 1).any():
            return "probabilistic max-pooling allows at most one unit on in each block"
        return None


def _pair(value, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive integer or a pair of them, got {value!r}")
    return pair


@register("nn.ConvRBM")
class ConvRBM(BaseRBM):
    """Convolutional RBM: filters shared across positions, one bias per channel and per
    feature map, optional probabilistic max-pooling (Lee, Grosse, Ranganath & Ng 2009).

    The energy is ``E(v, h) = E_v(v) + E_h(h) - sum_k h_k . (W_k * v)``, where ``W_k * v`` is
    the valid cross-correlation of the image with filter ``k`` (``torch.nn.functional.conv2d``).
    Visible and hidden states are flat rows, channels first (``v.reshape(-1, C, H, W)`` is
    the image), so every sampler and monitor of the dense RBM applies.

    Parameters
    ----------
    image_shape : (channels, height, width)
    n_filters : int
        Feature maps (hidden channels).
    kernel_size : int or (int, int)
    pool : int, default 1
        Probabilistic max-pooling over ``pool x pool`` blocks of each map (1: none); the
        layer above sees the pooling units.
    visible : {"bernoulli", "gaussian"} or Units, default "bernoulli"
        Gaussian units have unit variance (standardise the data).
    weight_std : float, default 0.01
    generator : torch.Generator, optional

    Attributes
    ----------
    weight : Parameter of shape (n_filters, channels, kernel height, kernel width)
        The layout of ``nn.Conv2d.weight``.
    channel_bias, map_bias : Parameters of shape (channels,) and (n_filters,)
    visible_bias, hidden_bias : tensors
        The same biases, one entry per unit (computed from the parameters).
    """

    visible_logvar = None
    hidden_logvar = None

    def __init__(
        self,
        image_shape,
        n_filters: int,
        kernel_size,
        pool: int = 1,
        visible: Units | str = "bernoulli",
        weight_std: float = 0.01,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        shape = tuple(image_shape)
        if len(shape) != 3 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"image_shape must be (channels, height, width), got {image_shape!r}")
        if not isinstance(n_filters, int) or n_filters < 1:
            raise ValueError(f"n_filters must be a positive integer, got {n_filters!r}")
        kernel = _pair(kernel_size, "kernel_size")
        maps = (shape[1] - kernel[0] + 1, shape[2] - kernel[1] + 1)
        if min(maps) < 1:
            raise ValueError(
                f"a {kernel[0]}x{kernel[1]} kernel does not fit a {shape[1]}x{shape[2]} image"
            )
        self.image_shape, self.kernel_size, self.map_shape = shape, kernel, maps
        self.n_filters, self.pool = int(n_filters), int(pool)
        self.visible = units_from_spec(visible)
        if type(self.visible) not in (BernoulliUnits, GaussianUnits):
            raise ValueError(
                "a ConvRBM's visible units are 'bernoulli' or 'gaussian', got "
                f"{self.visible.name!r}"
            )
        if self.pool > 1:
            self.hidden = MaxPoolBernoulliUnits(n_filters, maps, self.pool)
        elif self.pool == 1:
            self.hidden = BernoulliUnits()
        else:
            raise ValueError(f"pool must be a positive integer, got {pool!r}")
        self.n_visible = math.prod(shape)
        self.n_hidden = self.n_filters * math.prod(maps)
        kw = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        weight = torch.randn(n_filters, shape[0], *kernel, generator=generator, **kw)
        self.weight = nn.Parameter(weight * weight_std)
        self.channel_bias = nn.Parameter(torch.zeros(shape[0], **kw))
        self.map_bias = nn.Parameter(torch.zeros(n_filters, **kw))

    # ----------------------------------------------------------------- description
    def config(self) -> dict:
        """JSON-serialisable constructor arguments (weights excluded)."""
        return {
            "kind": "conv",
            "image_shape": list(self.image_shape),
            "n_filters": self.n_filters,
            "kernel_size": list(self.kernel_size),
            "pool": self.pool,
            "visible": self.visible.config(),
        }

    @classmethod
    def from_config(cls, config: dict, **kw) -> ConvRBM:
        """Build a ConvRBM (with fresh weights) from :meth:`config`."""
        return cls(
            tuple(config["image_shape"]),
            config["n_filters"],
            tuple(config["kernel_size"]),
            pool=config["pool"],
            visible=units_from_config(config["visible"]),
            **kw,
        )

    def _to_state(self) -> dict:
        return {"config": self.config(), "state_dict": dict(self.state_dict())}

    @classmethod
    def _from_state(cls, state: dict) -> ConvRBM:
        model = cls.from_config(state["config"], dtype=state["state_dict"]["weight"].dtype)
        model.load_state_dict(state["state_dict"])
        return model

    def extra_repr(self) -> str:
        c, h, w = self.image_shape
        kh, kw = self.kernel_size
        return (
            f"{c}x{h}x{w} -> {self.n_filters} maps of {kh}x{kw} filters, pool={self.pool}, "
            f"visible={self.visible}"
        )

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(n_filters, height, width)`` of what the layer above sees (pooled maps)."""
        h, w = self.map_shape
        return (self.n_filters, h // self.pool, w // self.pool)

    @property
    def n_output(self) -> int:
        return math.prod(self.output_shape)

    # ----------------------------------------------------------------- biases per unit
    @property
    def visible_bias(self) -> torch.Tensor:
        return self.channel_bias.repeat_interleave(self.n_visible // self.image_shape[0])

    @property
    def hidden_bias(self) -> torch.Tensor:
        return self.map_bias.repeat_interleave(math.prod(self.map_shape))

    # ----------------------------------------------------------------- fields
    def hidden_field(self, v: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``beta * (W_k * s_v(v))`` for every map ``k``, as flat rows."""
        images = self.visible.statistic(v).reshape(-1, *self.image_shape)
        field = F.conv2d(images, self.weight).reshape(*v.shape[:-1], self.n_hidden)
        return field if _is_one(beta) else beta * field

    def visible_field(self, h: torch.Tensor, beta=1.0) -> torch.Tensor:
        """``beta * sum_k W_k (full convolution) h_k``, as flat rows."""
        maps = h.reshape(-1, self.n_filters, *self.map_shape)
        field = F.conv_transpose2d(maps, self.weight).reshape(*h.shape[:-1], self.n_visible)
        return field if _is_one(beta) else beta * field

    def hidden_input(self, v: torch.Tensor, beta=1.0) -> torch.Tensor:
        return self.hidden_bias + self.hidden_field(v, beta)

    def visible_input(self, h: torch.Tensor, beta=1.0) -> torch.Tensor:
        return self.visible_bias + self.visible_field(h, beta)

    # ----------------------------------------------------------------- the layer above
    def output(self, v: torch.Tensor, sample: bool = False, generator=None) -> torch.Tensor:
        """The pooling units' means (or a sample of them) given ``v``; without pooling, the
        hidden units'."""
        if self.pool == 1:
            return super().output(v, sample, generator)
        if sample:
            return self.hidden.pooled_state(self.sample_hidden(v, generator=generator))
        return self.hidden.pooled_mean(self.hidden_input(v))

    def output_to_hidden(self, p: torch.Tensor) -> torch.Tensor:
        """Detection means for a down pass from pooling means ``p`` (spread evenly over
        each block)."""
        return p if self.pool == 1 else self.hidden.spread(p)

    @torch.no_grad()
    def init_visible_bias_from_data(self, data: torch.Tensor, eps: float = 1e-3) -> None:
        """Each channel's bias from the data's mean over that channel (as the dense RBM
        sets each unit's)."""
        mean = data.reshape(-1, self.image_shape[0], self.n_visible // self.image_shape[0])
        mean = mean.mean((0, 2))
        if isinstance(self.visible, BernoulliUnits):
            p = mean.clamp(eps, 1 - eps)
            self.channel_bias.copy_(torch.log(p) - torch.log1p(-p))
        else:
            self.channel_bias.copy_(mean)

    @torch.no_grad()
    def free_energy_grads(self, v: torch.Tensor, h_mean: torch.Tensor) -> list[torch.Tensor]:
        """Gradients of the mean free energy of the rows ``v`` with respect to ``weight``,
        ``channel_bias`` and ``map_bias`` (the order of :meth:`parameters`), given
        ``h_mean = E[h | v]``: minus the correlation of the images with the hidden maps,
        minus the maps' sums, and the visible units' bias gradient summed per channel."""
        n, channels = v.shape[0], self.image_shape[0]
        images = self.visible.statistic(v).reshape(n, *self.image_shape)
        maps = h_mean.reshape(n, self.n_filters, *self.map_shape)
        weight = torch.nn.grad.conv2d_weight(images, self.weight.shape, maps)
        visible = self.visible.energy_bias_grad(v, self.visible_bias).reshape(n, channels, -1)
        return [-weight / n, visible.sum((0, 2)) / n, -maps.sum((0, 2, 3)) / n]

    @torch.no_grad()
    def limit_norms_(self, max_norm: float) -> None:
        """Scale down every filter whose L2 norm exceeds ``max_norm``."""
        norms = self.weight.flatten(1).norm(dim=1).reshape(-1, 1, 1, 1)
        self.weight.mul_(torch.clamp(max_norm / (norms + 1e-12), max=1.0))

    def macs_per_row(self) -> int:
        """Multiply-adds of one hidden field (a cost measure for time budgets)."""
        return self.n_hidden * self.image_shape[0] * math.prod(self.kernel_size)


class ProbabilisticMaxPool(nn.Module):
    """Feed-forward probabilistic max-pooling: ``sigmoid(logsumexp)`` over each block of the
    detection maps' inputs, the probability that the block's pooling unit is on."""

    def __init__(self, pool: int):
        super().__init__()
        self.pool = int(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, h, w = x.shape
        p = self.pool
        blocks = x.reshape(n, k, h // p, p, w // p, p)
        return torch.sigmoid(torch.logsumexp(blocks, (3, 5)))

    def extra_repr(self) -> str:
        return f"pool={self.pool}"


def tied_conv(rbm: ConvRBM) -> nn.Conv2d:
    """An ``nn.Conv2d`` whose weight and bias ARE the ConvRBM's ``weight`` and ``map_bias``
    (the same Parameters): training it trains the RBM."""
    conv = nn.utils.skip_init(
        nn.Conv2d,
        rbm.image_shape[0],
        rbm.n_filters,
        rbm.kernel_size,
        device=rbm.weight.device,
        dtype=rbm.weight.dtype,
    )
    del conv.weight, conv.bias
    conv.weight, conv.bias = rbm.weight, rbm.map_bias
    return conv


def conv_feedforward(rbm: ConvRBM) -> list[nn.Module]:
    """The up pass of one conv layer: images in, the layer's output maps out."""
    layers: list[nn.Module] = [tied_conv(rbm)]
    layers.append(ProbabilisticMaxPool(rbm.pool) if rbm.pool > 1 else nn.Sigmoid())
    return layers


def _is_one(beta) -> bool:
    return isinstance(beta, (int, float)) and beta == 1


def layer_from_config(config: dict, **kw) -> BaseRBM:
    """A dense :class:`~deepbelief.nn.RBM` or a :class:`ConvRBM` (with fresh weights) from
    its ``config()``."""
    if config.get("kind") == "conv":
        return ConvRBM.from_config(config, **kw)
    return RBM.from_config(config, **kw)
