"""Negative-phase samplers: contrastive divergence, persistent CD and parallel tempering.

A sampler owns its Markov chains. The training loop asks it for negative particles with
:meth:`Sampler.negative` and does not know which sampler it has. Each sampler round-trips its
chains through :meth:`Sampler.state_dict` / :meth:`Sampler.load_state_dict`, so a resumed
training continues exactly where it stopped.
"""

from __future__ import annotations

import torch

from .nn.rbm import RBM


class Sampler:
    """Base class: produces negative (model) samples for the gradient of an RBM."""

    name = "sampler"

    def __init__(self, k: int = 1):
        if int(k) < 1:
            raise ValueError(f"k (Gibbs steps) must be >= 1, got {k}")
        self.k = int(k)

    def config(self) -> dict:
        """JSON-serialisable constructor arguments."""
        return {"type": self.name, "k": self.k}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items() if k != "type")
        return f"{type(self).__name__}({args})"

    @torch.no_grad()
    def negative(
        self,
        model: RBM,
        v_data: torch.Tensor,
        generator: torch.Generator | None = None,
        hidden_input: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Return visible negative particles for one minibatch of data ``v_data``.

        ``hidden_input`` may pass ``model.hidden_input(v_data)`` when the caller already has it.
        """
        raise NotImplementedError

    @torch.no_grad()
    def sample(
        self, model: RBM, n: int, steps: int = 1000, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw ``n`` visible samples by running ``steps`` Gibbs steps from a random start."""
        v = random_visible(model, n, generator)
        return model.gibbs(v, steps, generator=generator)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors of the sampler's chains (empty when it has none)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the chains saved by :meth:`state_dict`."""

    def reset(self) -> None:
        """Forget the chains (they are re-initialised at the next call)."""


class CD(Sampler):
    """Contrastive divergence CD-k: ``k`` Gibbs steps started at the data.

    Parameters
    ----------
    k : int, default 1
        Gibbs steps.
    reconstruction : {"mean", "sample"}, default "mean"
        The last visible state: its conditional mean ``E[v | h_(k-1)]``, as Hinton's practical
        guide (sections 3.2-3.3) and Hinton & Salakhutdinov's (2006) code recommend (less
        sampling noise, and cheaper), or a sample, the textbook Gibbs estimator whose
        expectation tends to the exact gradient as ``k`` grows. Earlier steps always sample.
    """

    name = "cd"

    def __init__(self, k: int = 1, reconstruction: str = "mean"):
        super().__init__(k)
        if reconstruction not in ("mean", "sample"):
            raise ValueError(f"reconstruction must be 'mean' or 'sample', got {reconstruction!r}")
        self.reconstruction = reconstruction

    def config(self):
        return {**super().config(), "reconstruction": self.reconstruction}

    @torch.no_grad()
    def negative(self, model, v_data, generator=None, hidden_input=None):
        if hidden_input is None:
            hidden_input = model.hidden_input(v_data)
        h = model.hidden.sample(hidden_input, model.hidden_logvar, generator)
        for _ in range(self.k - 1):
            h = model.sample_hidden(
                model.sample_visible(h, generator=generator), generator=generator
            )
        if self.reconstruction == "mean":
            return model.visible_mean(h)
        return model.sample_visible(h, generator=generator)


class PCD(Sampler):
    """Persistent contrastive divergence (Tieleman 2008): chains that survive between updates.

    Parameters
    ----------
    k : int, default 1
        Gibbs steps per update.
    n_chains : int, optional
        Number of persistent chains; by default the size of the first minibatch. The chains
        start at randomly chosen rows of the first minibatch.
    """

    name = "pcd"

    def __init__(self, k: int = 1, n_chains: int | None = None):
        super().__init__(k)
        self.n_chains = None if n_chains is None else int(n_chains)
        if self.n_chains is not None and self.n_chains < 1:
            raise ValueError(f"n_chains must be >= 1, got {n_chains}")
        self.chains: torch.Tensor | None = None

    def config(self):
        return {**super().config(), "n_chains": self.n_chains}

    def _init_chains(self, v_data, generator, n_copies: int = 1) -> torch.Tensor:
        n = self.n_chains or len(v_data)
        rows = torch.randint(
            len(v_data), (n_copies * n,), generator=generator, device=v_data.device
        )
        return v_data[rows].clone()

    @torch.no_grad()
    def negative(self, model, v_data, generator=None, hidden_input=None):
        if self.chains is None:
            self.chains = self._init_chains(v_data, generator)
        self.chains = model.gibbs(self.chains, self.k, generator=generator)
        return self.chains

    def state_dict(self):
        return {} if self.chains is None else {"chains": self.chains}

    def load_state_dict(self, state):
        self.chains = state.get("chains")

    def reset(self):
        self.chains = None


class PT(PCD):
    """Parallel tempering (Desjardins et al. 2010; Cho, Raiko & Ilin 2010).

    Each of ``n_chains`` replicas runs at every inverse temperature of the ladder ``betas``
    (1 = the model, 0 = independent units; the inverse temperature scales the interaction
    term). After each round of Gibbs steps, neighbouring temperatures propose to swap their
    states (alternating even and odd pairs), accepted by the Metropolis rule on the tempered
    free energies. The ``beta = 1`` chains are the negative particles.

    Parameters
    ----------
    k : int, default 1
        Gibbs steps at each temperature per round.
    n_chains : int, optional
        Replicas per temperature; by default the size of the first minibatch.
    n_temperatures : int, default 10
        Length of the ladder when ``betas`` is not given (evenly spaced from 1 down to 0).
    betas : sequence of float, optional
        The inverse temperatures, starting at 1 and decreasing.

    Attributes
    ----------
    swap_rates : tensor of shape (n_temperatures - 1,)
        Fraction of accepted swaps between each pair of neighbours so far.
    """

    name = "pt"

    def __init__(self, k=1, n_chains=None, n_temperatures: int = 10, betas=None):
        super().__init__(k, n_chains)
        if betas is None:
            if int(n_temperatures) < 2:
                raise ValueError(
                    f"parallel tempering needs >= 2 temperatures, got {n_temperatures}"
                )
            betas = torch.linspace(1.0, 0.0, int(n_temperatures)).tolist()
        betas = [float(b) for b in betas]
        if len(betas) < 2 or betas[0] != 1.0 or any(b < 0 for b in betas):
            raise ValueError(f"betas must start at 1.0, hold >= 2 values and be >= 0, got {betas}")
        if any(b2 >= b1 for b1, b2 in zip(betas, betas[1:])):
            raise ValueError(f"betas must decrease strictly, got {betas}")
        self.betas = betas
        self.reset()

    def config(self):
        return {**super().config(), "betas": self.betas}

    @property
    def n_temperatures(self) -> int:
        return len(self.betas)

    @property
    def swap_rates(self) -> torch.Tensor:
        return self.swap_accepts / self.swap_attempts.clamp_min(1)

    def reset(self):
        self.chains = None  # (n_temperatures, n_chains, n_visible)
        pairs = len(self.betas) - 1
        self.swap_attempts = torch.zeros(pairs, dtype=torch.float64)
        self.swap_accepts = torch.zeros(pairs, dtype=torch.float64)
        self.parity = 0

    def _beta_column(self, model, n_chains) -> torch.Tensor:
        betas = torch.tensor(self.betas, dtype=model.weight.dtype, device=model.weight.device)
        return betas.repeat_interleave(n_chains).unsqueeze(1)

    @torch.no_grad()
    def _round(self, model, chains, generator) -> torch.Tensor:
        t, c, n = chains.shape
        beta = self._beta_column(model, c)
        v = chains.reshape(t * c, n)
        v = model.gibbs(v, self.k, beta=beta, generator=generator)
        return self._swap(model, v.reshape(t, c, n), generator)

    @torch.no_grad()
    def _swap(self, model, chains, generator) -> torch.Tensor:
        t, c, n = chains.shape
        lower = torch.arange(self.parity, t - 1, 2)  # pairs (i, i + 1) proposed this round
        self.parity = 1 - self.parity
        if len(lower) == 0:
            return chains
        v_i, v_j = chains[lower], chains[lower + 1]
        betas = torch.tensor(self.betas, dtype=chains.dtype, device=chains.device)
        b_i, b_j = betas[lower, None], betas[lower + 1, None]
        f_i = model.hidden_field(v_i.reshape(-1, n)).reshape(len(lower), c, -1)
        f_j = model.hidden_field(v_j.reshape(-1, n)).reshape(len(lower), c, -1)

        def free(v, field, b):  # tempered free energy, shape (pairs, c)
            return model.free_energy_from_field(v, b.unsqueeze(-1) * field)

        log_ratio = (
            free(v_i, f_i, b_i) + free(v_j, f_j, b_j) - free(v_j, f_j, b_i) - free(v_i, f_i, b_j)
        )
        u = torch.rand(
            log_ratio.shape, generator=generator, dtype=chains.dtype, device=chains.device
        )
        accept = torch.log(u) < log_ratio
        swapped = chains.clone()
        swapped[lower] = torch.where(accept.unsqueeze(-1), v_j, v_i)
        swapped[lower + 1] = torch.where(accept.unsqueeze(-1), v_i, v_j)
        if self.swap_accepts.device != chains.device:  # the counters follow the chains: no
            self.swap_attempts = self.swap_attempts.to(chains.device)  # copy back each round
            self.swap_accepts = self.swap_accepts.to(chains.device)
        index = lower.to(chains.device)
        self.swap_attempts[index] += c
        self.swap_accepts[index] += accept.sum(1).to(torch.float64)
        return swapped

    @torch.no_grad()
    def negative(self, model, v_data, generator=None, hidden_input=None):
        if self.chains is None:
            start = self._init_chains(v_data, generator, n_copies=len(self.betas))
            self.chains = start.reshape(len(self.betas), -1, v_data.shape[1])
        self.chains = self._round(model, self.chains, generator)
        return self.chains[0]

    @torch.no_grad()
    def sample(self, model, n, steps=1000, generator=None):
        start = random_visible(model, len(self.betas) * n, generator)
        chains = start.reshape(len(self.betas), n, -1)
        rounds = max(1, -(-int(steps) // self.k))
        saved = (self.swap_attempts.clone(), self.swap_accepts.clone(), self.parity)
        for _ in range(rounds):
            chains = self._round(model, chains, generator)
        self.swap_attempts, self.swap_accepts, self.parity = saved
        return chains[0]

    def state_dict(self):
        if self.chains is None:
            return {}
        return {
            "chains": self.chains,
            "swap_attempts": self.swap_attempts,
            "swap_accepts": self.swap_accepts,
            "parity": torch.tensor(self.parity),
        }

    def load_state_dict(self, state):
        self.reset()
        if "chains" in state:
            self.chains = state["chains"]
            # the counters are read onto the CPU whatever device wrote them, and follow the
            # chains (which the trainer moves to the model's device) at the next round
            self.swap_attempts = state["swap_attempts"].to("cpu", torch.float64).clone()
            self.swap_accepts = state["swap_accepts"].to("cpu", torch.float64).clone()
            self.parity = int(state["parity"])


def random_visible(model: RBM, n: int, generator=None) -> torch.Tensor:
    """Visible states drawn from the visible units alone (hidden units off): a chain start."""
    kw = {"dtype": model.weight.dtype, "device": model.weight.device}
    x = model.visible_bias.detach().expand(int(n), -1).clone().to(**kw)
    return model.visible.sample(x, model.visible_logvar, generator)


_SAMPLERS = {"cd": CD, "pcd": PCD, "pt": PT}


def sampler_from_config(config: dict) -> Sampler:
    """Rebuild a sampler from :meth:`Sampler.config`."""
    config = dict(config)
    kind = config.pop("type", None)
    if kind not in _SAMPLERS:
        raise ValueError(f"unknown sampler {kind!r}; expected one of {sorted(_SAMPLERS)}")
    return _SAMPLERS[kind](**config)


def make_sampler(spec, k: int = 1, n_chains: int | None = None, **kw) -> Sampler:
    """A fresh sampler from a name ('cd', 'pcd', 'pt') with its settings, or from the
    settings of a :class:`Sampler` (whose chains are not shared)."""
    if isinstance(spec, Sampler):
        return sampler_from_config(spec.config())
    if spec == "cd":  # (CD has no chains to keep: n_chains means nothing to it)
        return CD(k, **kw)
    if spec == "pcd":
        return PCD(k, n_chains, **kw)
    if spec == "pt":
        return PT(k, n_chains, **kw)
    raise ValueError(f"unknown sampler {spec!r}; expected 'cd', 'pcd', 'pt' or a Sampler")
