"""One process of the distributed tests (tests/test_distributed.py), started by torchrun or
alone: ``python distributed_worker.py MODE OUT_DIR``. Writes ``OUT_DIR/rank{R}-of-{N}.npz``
with the parameters it ends with."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from deepbelief import distributed


def rbm_update() -> dict:
    """Three updates of a float64 RBM with the negative phase held fixed (the mirror image of
    each data row): one process on all 8 rows per update, or each of N on 8 / N of them."""
    from deepbelief.nn import RBM
    from deepbelief.training import RBMTrainer

    _, size = distributed.world()
    model = RBM(6, 4, generator=torch.Generator().manual_seed(0)).double()
    X = torch.bernoulli(torch.full((8, 6), 0.4, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))  # fmt: skip
    trainer = RBMTrainer(model, epochs=3, batch_size=8 // size, learning_rate=0.1,
                         momentum=0.5, weight_decay=0.01, monitor_rows=0,
                         generator=torch.Generator().manual_seed(2))  # fmt: skip
    trainer.sampler.negative = lambda model, v, generator=None, hidden_input=None: 1 - v
    trainer.fit(X)
    return {name: p.detach().numpy() for name, p in model.named_parameters()}


def estimators() -> dict:
    """A classifier, and a generative DBN with label training and up-down, on digits."""
    from sklearn.datasets import load_digits

    from deepbelief import DBN, DBNClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:300] / 16, y[:300]
    clf = DBNClassifier(hidden_layers=(16,), pretrain_epochs=2, epochs=40, batch_size=16,
                        random_state=0).fit(X, y)  # fmt: skip
    gen = DBN(hidden_layers=(16, 16), pretrain_epochs=2, label_epochs=2, up_down_epochs=2,
              random_state=0).fit(X, y)  # fmt: skip
    out = {f"clf.{k}": v.detach().numpy() for k, v in clf.network_.state_dict().items()}
    out.update({f"gen.{k}": v.detach().numpy() for k, v in gen.dbn_.state_dict().items()})
    out["accuracy"] = np.array(clf.score(X, y))
    return out


def uneven() -> dict:
    """Each process with another number of rows (other data): the refusal each one gets."""
    from deepbelief.errors import DataError
    from deepbelief.nn import RBM
    from deepbelief.training import RBMTrainer

    rank, _ = distributed.world()
    X = torch.bernoulli(torch.full((8 + 2 * rank, 6), 0.4), generator=torch.Generator())
    trainer = RBMTrainer(RBM(6, 4), epochs=1, batch_size=4, monitor_rows=0)
    try:
        trainer.fit(X)
    except DataError as exc:
        return {"error": np.array(str(exc))}
    return {"error": np.array("")}


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    if distributed.launched_by_torchrun():
        distributed.init_from_environment()
    rank, size = distributed.world()
    try:
        arrays = {"rbm": rbm_update, "estimators": estimators, "uneven": uneven}[mode]()
        np.savez(out / f"rank{rank}-of-{size}.npz", **arrays)
    finally:
        distributed.leave()


if __name__ == "__main__":
    main()
