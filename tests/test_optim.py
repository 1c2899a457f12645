"""deepbelief.optim.SGD against torch.optim.SGD: the same arithmetic and the same state."""

import pytest
import torch

from deepbelief.optim import SGD


def _network(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Sigmoid(), torch.nn.Linear(5, 3))


def _groups(network, weight_decay):
    params = list(network.parameters())
    return [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]


def _train(network, optimizer, steps: int, lr_at=lambda step: 0.1):
    X, y = torch.randn(8, 6, generator=torch.Generator().manual_seed(1)), torch.arange(8) % 3
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(network(X), y).backward()
        optimizer.step()


@pytest.mark.parametrize("momentum, weight_decay", [(0.9, 1e-2), (0.0, 1e-2), (0.5, 0.0)])
def test_sgd_is_torchs_bit_for_bit(momentum, weight_decay):
    """Five steps with a changing rate, weight decay on the weights only: the same parameters
    and momentum buffers as torch.optim.SGD, exactly."""
    ours, theirs = _network(0), _network(0)
    ours_opt = SGD(_groups(ours, weight_decay), lr=0.1, momentum=momentum)
    theirs_opt = torch.optim.SGD(_groups(theirs, weight_decay), lr=0.1, momentum=momentum)
    _train(ours, ours_opt, 5, lambda step: 0.1 / (1 + step))
    _train(theirs, theirs_opt, 5, lambda step: 0.1 / (1 + step))
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.equal(a, b)
        assert (ours_opt.state[a].get("momentum_buffer") is None) == (momentum == 0)
        if momentum:
            assert torch.equal(
                ours_opt.state[a]["momentum_buffer"], theirs_opt.state[b]["momentum_buffer"]
            )


def test_state_moves_between_ours_and_torchs():
    """A state saved by torch's SGD continues in ours, and ours in torch's, as if unbroken."""
    reference, network = _network(0), _network(0)
    ref_opt = torch.optim.SGD(_groups(reference, 1e-3), lr=0.1, momentum=0.9)
    _train(reference, ref_opt, 6)

    first = torch.optim.SGD(_groups(network, 1e-3), lr=0.1, momentum=0.9)
    _train(network, first, 2)
    second = SGD(_groups(network, 1e-3), lr=0.1, momentum=0.9)
    second.load_state_dict(first.state_dict())
    _train(network, second, 2)
    third = torch.optim.SGD(_groups(network, 1e-3), lr=0.1, momentum=0.9)
    third.load_state_dict(second.state_dict())
    _train(network, third, 2)
    for a, b in zip(network.parameters(), reference.parameters(), strict=True):
        assert torch.equal(a, b)


def test_load_refuses_another_layout():
    network = _network(0)
    saved = SGD(network.parameters(), lr=0.1, momentum=0.9).state_dict()
    with pytest.raises(ValueError, match="does not match"):
        SGD(_groups(network, 0.0), lr=0.1, momentum=0.9).load_state_dict(saved)


def test_parameters_without_gradients_are_left_alone():
    network = _network(0)
    frozen = network[0].weight
    frozen.requires_grad_(False)
    before = frozen.clone()
    optimizer = SGD(network.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    _train(network, optimizer, 2)
    assert torch.equal(frozen, before)
    assert "momentum_buffer" not in optimizer.state[frozen]
