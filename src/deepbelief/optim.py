"""Stochastic gradient descent with momentum, without ``torch.optim``'s start-up cost.

Building a ``torch.optim`` optimizer, or calling its methods, imports ``torch._dynamo`` the
first time: about a second per process, more than training a small RBM or fine-tuning on a
small table. :class:`SGD` does the arithmetic of ``torch.optim.SGD`` (momentum, no
dampening, no Nesterov, per-group weight decay) and keeps its state in torch's format, so
checkpoints written with either load into either.
"""

from __future__ import annotations

from collections import defaultdict

import torch

__all__ = ["SGD"]

_GROUP_DEFAULTS = {
    "dampening": 0,
    "weight_decay": 0,
    "nesterov": False,
    "maximize": False,
    "foreach": None,
    "differentiable": False,
    "fused": None,
}


class SGD:
    """``torch.optim.SGD`` with momentum (no dampening, no Nesterov), bit for bit on the CPU.

    Parameters
    ----------
    params : iterable of Parameter, or of dict
        The parameters, or parameter groups (dicts with ``"params"`` and optionally
        ``"weight_decay"``, ``"lr"`` or ``"momentum"``), as for ``torch.optim``.
    lr : float
    momentum : float, default 0
    weight_decay : float, default 0
        L2 penalty added to the gradients (torch's convention), for groups that do not set
        their own.

    Attributes
    ----------
    param_groups : list of dict
        torch's layout: ``"params"``, ``"lr"``, ``"momentum"``, ``"weight_decay"`` and the
        fixed settings torch records.
    state : dict
        ``{param: {"momentum_buffer": tensor}}``.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params}]
        defaults = {"lr": lr, "momentum": momentum, **_GROUP_DEFAULTS}
        defaults["weight_decay"] = weight_decay
        self.param_groups = [{**defaults, **g, "params": list(g["params"])} for g in groups]
        self.state: defaultdict = defaultdict(dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every parameter (set to None, or zeroed)."""
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient, as ``torch.optim.SGD.step``."""
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            if group["momentum"]:
                grads = momentum_buffers(self, params, grads, group["momentum"])
            if params:
                torch._foreach_add_(params, grads, alpha=-group["lr"])

    def state_dict(self) -> dict:
        """``{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}``: torch's
        format, the parameters numbered across the groups in order, with the live tensors."""
        index = {id(p): i for i, p in enumerate(self._params())}
        state = {index[id(p)]: dict(v) for p, v in self.state.items() if id(p) in index}
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            settings = {k: v for k, v in group.items() if k != "params"}
            groups.append({**settings, "params": list(range(start, start + n))})
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore :meth:`state_dict` (or a ``torch.optim.SGD``'s): floating-point state moves
        to each parameter's dtype and device; the saved hyperparameters are kept."""
        saved = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        if [len(g["params"]) for g in saved] != sizes:
            raise ValueError("the saved optimizer state does not match this model's parameters")
        by_index = {}
        for group, ours in zip(saved, self.param_groups, strict=True):
            by_index.update(zip(group["params"], ours["params"], strict=True))
        state: defaultdict = defaultdict(dict)
        for key, values in state_dict["state"].items():
            param = by_index.get(key)
            state[key if param is None else param] = (
                values if param is None else {k: _like(v, param) for k, v in values.items()}
            )
        self.param_groups = [
            {**group, "params": ours["params"]}
            for group, ours in zip(saved, self.param_groups, strict=True)
        ]
        self.state = state

    def _params(self) -> list:
        return [p for group in self.param_groups for p in group["params"]]


@torch.no_grad()
def momentum_buffers(optimizer, params, grads, momentum: float) -> list:
    """torch's SGD momentum for ``params``: each buffer becomes ``momentum * buf + grad``,
    or a copy of ``grad`` where none exists yet; returns the buffers."""
    buffers = []
    for p, g in zip(params, grads, strict=True):
        buf = optimizer.state[p].get("momentum_buffer")
        if buf is None:
            buf = optimizer.state[p]["momentum_buffer"] = torch.clone(g).detach()
        else:
            buf.mul_(momentum).add_(g)
        buffers.append(buf)
    return buffers


def _like(value, param: torch.Tensor):
    """A saved state value on ``param``'s device (and dtype, when floating point)."""
    if not isinstance(value, torch.Tensor):
        return value
    if value.is_floating_point():
        return value.to(dtype=param.dtype, device=param.device)
    return value.to(device=param.device)
