"""Multi-prediction training of an RBM for filling in (Goodfellow, Mirza, Courville & Bengio
2013): the mean-field fill-in that :func:`deepbelief.applications.fill_in` runs, trained by
backpropagation to predict entries hidden from it.

Each row of a batch hides a random set of its observed entries: for half of the rows a random
subset (each entry with a share drawn uniformly from (0, 1)), for the other half a run of
consecutive columns (random start and length, wrapping around: a band of an image stored row
by row). The hidden entries and those missing in the data start at the column means; ``passes``
mean-field passes fill them with the observed entries clamped, and the loss is the
cross-entropy (Bernoulli units) or half the squared error (other units) of the hidden entries'
predictions. Entries missing in the data are filled too, but never scored. The RBM's
generatively trained weights are the starting point; Adam updates them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["fill_passes", "hide", "train_to_fill"]


def fill_passes(module, x: torch.Tensor, free: torch.Tensor, passes: int):
    """``passes`` mean-field passes of ``module`` (an nn.RBM) from ``x`` with the entries
    outside ``free`` clamped, differentiable; returns (the last visible input, the filled rows).
    """
    v = x
    for _ in range(passes):
        field = module.visible_input(module.hidden_mean(v))
        v = torch.where(free, module.visible.mean(field, module.visible_logvar), x)
    return field, v


def hide(n: int, d: int, generator: torch.Generator, device) -> torch.Tensor:
    """Entries to hide (bool, shape (n, d)): random subsets in the first half of the rows,
    runs of consecutive columns in the second."""
    kw = dict(generator=generator, device=device)
    share = torch.rand(n, 1, **kw)
    subsets = torch.rand(n, d, **kw) < share
    start = torch.randint(0, d, (n, 1), **kw)
    length = torch.randint(1, d + 1, (n, 1), **kw)
    offset = (torch.arange(d, device=device) - start) % d
    runs = offset < length
    first_half = (torch.arange(n, device=device) < n // 2).unsqueeze(1)
    return torch.where(first_half, subsets, runs)


def prediction_loss(module, field: torch.Tensor, target: torch.Tensor, scored) -> torch.Tensor:
    """Mean loss over the ``scored`` entries of the predictions ``field`` (visible input)."""
    if module.visible.name == "bernoulli":
        per_entry = F.binary_cross_entropy_with_logits(field, target, reduction="none")
    else:
        per_entry = 0.5 * (module.visible.mean(field, module.visible_logvar) - target) ** 2
    return (per_entry * scored).sum() / scored.sum().clamp(min=1)


def train_to_fill(
    module,
    X: torch.Tensor,
    missing: torch.Tensor,
    start: torch.Tensor,
    *,
    epochs: int,
    passes: int,
    batch_size: int,
    learning_rate: float,
    generator: torch.Generator,
) -> list[dict]:
    """Train ``module`` (an nn.RBM, in place) to fill in: see the module docstring.

    Parameters
    ----------
    module : deepbelief.nn.RBM
    X : tensor of shape (n, d)
        Rows in the model's scale; entries where ``missing`` is True are ignored.
    missing : bool tensor of shape (n, d)
    start : tensor of shape (d,)
        The first guess of each column (the column means).
    epochs, passes, batch_size : int
    learning_rate : float
        Adam's step size.
    generator : torch.Generator
        Draws the row order and the hidden entries.

    Returns
    -------
    list of dict
        Per epoch: ``{"epoch": e, "loss": mean loss of the epoch's batches}``.
    """
    X = torch.where(missing, start, X)
    optimizer = torch.optim.Adam(module.parameters(), lr=learning_rate)
    history = []
    with torch.enable_grad():
        for epoch in range(1, epochs + 1):
            order = torch.randperm(len(X), generator=generator, device=X.device)
            losses = []
            for rows in torch.split(order, batch_size):
                x, gaps = X[rows], missing[rows]
                hidden = hide(len(rows), X.shape[1], generator, X.device)
                free = hidden | gaps
                field, _ = fill_passes(module, torch.where(free, start, x), free, passes)
                loss = prediction_loss(module, field, x, hidden & ~gaps)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
            history.append({"epoch": epoch, "loss": float(torch.stack(losses).mean())})
    return history
