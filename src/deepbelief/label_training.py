"""Discriminative and hybrid training of the label units' RBM (Larochelle & Bengio 2008).

The top RBM of a DBN with label units (the classification RBM when it is the only one)
defines ``p(y | x) = softmax_y(-F(x, y))`` exactly. Discriminative training maximises
``log p(y | x)`` by gradient descent; hybrid training adds ``generative_weight`` times the
generative gradient of ``log p(x, y)``, estimated with persistent chains (PCD-1: one chain
per row of a batch, started from the first batch). Larochelle & Bengio estimate it by CD-1,
but CD leaves the spurious modes far from the data that free-running chains (sampling a class)
fall into; persistent chains find and lower them. Both start from the generatively
pretrained RBM and run in the shared fit loop (callbacks, checkpoints, divergence guard).
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from .images import random_shifts
from .loop import FitLoop, make_generator
from .nn.units import BernoulliUnits
from .optim import SGD

__all__ = ["LABEL_TRAINING", "LabelBackprop", "LabelTraining", "label_free_energy_matrix"]

#: ``label_training`` choices: pretraining alone (CD on the joint), discriminative, hybrid.
LABEL_TRAINING = ("generative", "discriminative", "hybrid")


def label_free_energy_matrix(dbn, features: torch.Tensor) -> torch.Tensor:
    """``F(features, y)`` of the top RBM for every label ``y``, shape (n, n_labels), with
    gradients (one product for the features; each label adds its row of the weights).
    Bernoulli hidden units take every label in one pass over an (n, n_labels, n_hidden)
    field; other units one label at a time."""
    top, n_labels = dbn.rbms[-1], dbn.n_labels
    v_off = dbn.top_visible(features)  # the label units off
    base = top.hidden_field(v_off)
    label_rows = top.weight[top.n_visible - n_labels :]
    if type(top.hidden) is BernoulliUnits:
        terms = F.softplus(base[:, None, :] + label_rows + top.hidden_bias)
        # a one-hot label c adds -b_c to the energy of the visible units (softmax units)
        visible = top.visible.energy(v_off, top.visible_bias, top.visible_logvar)[:, None]
        return visible - top.visible_bias[top.n_visible - n_labels :] - terms.sum(-1)
    energies = []
    for c in range(n_labels):
        labels = torch.full((len(features),), c, dtype=torch.long, device=features.device)
        v = dbn.top_visible(features, labels)
        energies.append(top.free_energy_from_field(v, base + label_rows[c]))
    return torch.stack(energies, 1)


class LabelTraining(FitLoop):
    """Trains the top RBM of ``dbn`` on ``features`` (its non-label inputs) and ``labels``.

    Parameters
    ----------
    dbn : deepbelief.nn.DBN
        With label units.
    features : tensor of shape (n, n_features)
        The inputs of the top RBM without the labels (the input itself for a classification
        RBM, else the penultimate hidden layer's means).
    labels : int64 tensor of shape (n,)
    objective : {"discriminative", "hybrid"}
    generative_weight : float
        The weight of the generative gradient in "hybrid".
    epochs, batch_size, learning_rate, momentum : training settings (SGD with momentum)
    generator : torch.Generator, optional
    callbacks : sequence of Callback

    Each epoch's metrics hold ``loss`` (the mean of ``-log p(y | x)`` over its updates).
    """

    what = "label training"

    def __init__(
        self, dbn, features, labels, *, objective="discriminative", generative_weight=0.01,
        epochs=20, batch_size=20, learning_rate=0.05, momentum=0.9, generator=None,
        callbacks=(),
    ):  # fmt: skip
        if not dbn.n_labels:
            raise ValueError("label training needs a DBN with label units")
        if objective not in LABEL_TRAINING[1:]:
            raise ValueError(f"objective must be 'discriminative' or 'hybrid'; got {objective!r}")
        generator = generator if generator is not None else make_generator(None, features.device)
        self._init_loop(epochs, batch_size, learning_rate, generator, callbacks)
        self.dbn, self.features, self.labels = dbn, features, labels
        self.objective, self.generative_weight = objective, float(generative_weight)
        self.chains = None  # the persistent chains of the hybrid's generative term
        top = dbn.rbms[-1]
        self.optimizer = SGD(top.parameters(), lr=learning_rate, momentum=momentum)

    def run(self) -> LabelTraining:
        """Train until ``epochs`` epochs are complete (continuing a resumed run)."""
        self.run_loop(len(self.features))
        return self

    def _update(self, rows: torch.Tensor, learning_rate: float) -> torch.Tensor:
        x = self.features.index_select(0, rows)  # whole rows: faster than features[rows]
        return self.train_step(x, self.labels[rows], learning_rate)

    def train_step(self, x, y, learning_rate: float, generator=None) -> float:
        """One update of the top RBM on features ``x`` and labels ``y`` (its persistent chains
        drawn with ``generator``, default the loop's); returns ``-log p(y | x)``'s mean (over
        the processes of a distributed run; no step when it is not finite)."""
        self.optimizer.param_groups[0]["lr"] = learning_rate
        self.optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(-label_free_energy_matrix(self.dbn, x), y)
        objective = loss
        if self.objective == "hybrid":
            generator = generator if generator is not None else self.generator
            objective = objective + self.generative_weight * self._persistent_divergence(
                x, y, generator
            )
        objective.backward()
        value = self._average_gradients(loss.detach())  # read by the loop in bulk
        self.optimizer.step()
        return value

    def _persistent_divergence(self, x, y, generator) -> torch.Tensor:
        """A surrogate whose gradient is PCD-1's estimate of ``-d log p(x, y)``."""
        top = self.dbn.rbms[-1]
        v_data = self.dbn.top_visible(x, y)
        with torch.no_grad():
            start = v_data if self.chains is None else self.chains
            self.chains = top.gibbs(start, 1, generator=generator)
        return top.free_energy(v_data).mean() - top.free_energy(self.chains).mean()

    #: the module this rule trains, under its key in the checkpoint
    _trained_key = "top"

    def _trained(self):
        return self.dbn.rbms[-1]

    def _parameters(self):
        return self._trained().parameters()

    def _rule_state(self) -> dict:
        state = {
            self._trained_key: dict(self._trained().state_dict()),
            "optimizer": self.optimizer.state_dict(),
        }
        if self.chains is not None:
            state["chains"] = self.chains.clone()
        return state

    def _load_rule_state(self, state: dict) -> None:
        self._trained().load_state_dict(state[self._trained_key])
        self.optimizer.load_state_dict(state["optimizer"])
        chains = state.get("chains")
        self.chains = None if chains is None else chains.to(self.features.device).clone()


class LabelBackprop(LabelTraining):
    """Backprop of ``-log p(y | x)`` through the recognition path of a label DBN, into the
    top RBM's label free energies, which stay as they are.

    The layers below the top are untied first (:meth:`deepbelief.nn.DBN.untie`) and only their
    recognition weights (the RBMs' own weights and hidden biases) learn: they become an
    inference network trained to give the features on which the top RBM's exact
    ``p(y | h) = softmax_y(-F(h, y))`` is right. The generative model (the top RBM and the
    generative weights) is not changed, so the samples are those of the model before this
    phase. Inverted dropout on the input at ``input_dropout`` and on every hidden layer below
    the top at ``dropout`` (none on the top's units: its free energy is the trained one); with
    ``shift``, each input image is first translated by a random offset of up to ``shift``
    pixels along each axis (:func:`deepbelief.images.random_shifts`). The learning rate
    decays linearly to zero.

    Parameters
    ----------
    dbn : deepbelief.nn.DBN
        With label units and two or more dense layers.
    X : tensor of shape (n, n_visible)
        The inputs.
    labels : int64 tensor of shape (n,)
    dropout, input_dropout : float in [0, 1)
    shift : int, default 0
        The largest translation of the input images, in pixels (0: none).
    image_shape : (C, H, W), optional
        The shape of the input rows as images (needed when ``shift`` is given).
    epochs, batch_size, learning_rate, momentum, generator, callbacks : as
        :class:`LabelTraining`
    """

    what = "label backprop"
    lr_schedule = "linear"

    def __init__(
        self, dbn, X, labels, *, epochs=20, batch_size=100, learning_rate=0.1, momentum=0.9,
        dropout=0.2, input_dropout=0.0, shift=0, image_shape=None, generator=None, callbacks=(),
    ):  # fmt: skip
        if len(dbn.rbms) < 2:
            raise ValueError("label backprop needs two or more hidden layers")
        super().__init__(
            dbn, X, labels, objective="discriminative", epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, momentum=momentum, generator=generator,
            callbacks=callbacks,
        )  # fmt: skip
        for name, rate in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0 <= rate < 1:
                raise ValueError(f"{name} must lie in [0, 1), got {rate!r}")
        self.dropout, self.input_dropout = float(dropout), float(input_dropout)
        if shift and (image_shape is None or math.prod(image_shape) != X.shape[1]):
            raise ValueError(f"shift needs the images' shape; got {image_shape!r}")
        self.shift, self.image_shape = int(shift), image_shape
        dbn.untie()
        recognition = [p for r in dbn.rbms[:-1] for p in (r.weight, r.hidden_bias)]
        self.optimizer = SGD(recognition, lr=learning_rate, momentum=momentum)

    def train_step(self, x, y, learning_rate: float, generator=None) -> float:
        """One update of the recognition weights on inputs ``x`` and labels ``y``; returns
        ``-log p(y | x)``'s mean (under the dropout masks)."""
        generator = generator if generator is not None else self.generator
        self.optimizer.param_groups[0]["lr"] = learning_rate
        self.optimizer.zero_grad(set_to_none=True)
        if self.shift:
            x = random_shifts(x, self.image_shape, self.shift, generator)
        h = self._dropped(x, self.input_dropout, generator)
        for rbm in self.dbn.rbms[:-1]:
            h = self._dropped(rbm.hidden_mean(h), self.dropout, generator)
        with frozen(self.dbn.rbms[-1]):
            loss = F.cross_entropy(-label_free_energy_matrix(self.dbn, h), y)
            loss.backward()
        value = self._average_gradients(loss.detach())  # read by the loop in bulk
        self.optimizer.step()
        return value

    @staticmethod
    def _dropped(h, rate, generator):
        """``h`` with inverted dropout at ``rate`` (``h`` itself when it is 0)."""
        if not rate:
            return h
        keep = torch.bernoulli(h.new_full(h.shape, 1 - rate), generator=generator)
        return h * keep.div_(1 - rate)

    def _parameters(self):
        return self.optimizer.param_groups[0]["params"]

    _trained_key = "dbn"

    def _trained(self):
        return self.dbn


@contextlib.contextmanager
def frozen(module: torch.nn.Module):
    """``module``'s parameters without gradients inside the block (gradients still flow
    through it to its inputs); restored after."""
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in params:
            p.requires_grad_(True)
