"""One process of the distributed tests (tests/test_distributed.py), started by torchrun or
alone: ``python distributed_worker.py MODE OUT_DIR``. Writes ``OUT_DIR/rank{R}-of-{N}.npz``
with the parameters it ends with."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from deepbelief import distributed


def rbm_update(**settings) -> dict:
    """Three updates of a float64 RBM with the negative phase held fixed (the mirror image of
    each data row): one process on all 8 rows per update, or each of N on 8 / N of them;
    ``settings`` go to the trainer."""
    from deepbelief.nn import RBM
    from deepbelief.training import RBMTrainer

    _, size = distributed.world()
    model = RBM(6, 4, generator=torch.Generator().manual_seed(0)).double()
    X = torch.bernoulli(torch.full((8, 6), 0.4, dtype=torch.float64),
                        generator=torch.Generator().manual_seed(1))  # fmt: skip
    trainer = RBMTrainer(model, epochs=3, batch_size=8 // size, learning_rate=0.1,
                         momentum=0.5, weight_decay=0.01, monitor_rows=0,
                         generator=torch.Generator().manual_seed(2), **settings)  # fmt: skip
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


def uneven_checkpoints(out: Path) -> dict:
    """Rank 0 given a checkpoint and rank 1 none: the refusal each one gets."""
    from sklearn.datasets import load_digits

    from deepbelief import DBNClassifier

    rank, _ = distributed.world()
    X, y = load_digits(return_X_y=True)
    estimator = DBNClassifier(hidden_layers=(8,), pretrain_epochs=1, epochs=1, random_state=0)
    try:
        estimator.fit(X[:100] / 16, y[:100], checkpoint=out / "run.ckpt" if rank == 0 else None)
    except ValueError as exc:
        return {"error": np.array(str(exc))}
    return {"error": np.array("")}


def interrupted(model: str, update: int, out: Path, resume: bool = True) -> dict:
    """An estimator fitted with a checkpoint three times: straight through; interrupted on
    rank 1 alone (as a signal reaching one process would) once ``update`` updates of its fit
    loops are done; resumed from the checkpoint. The parameters of the first and the last,
    and where each process stopped."""
    from sklearn.datasets import load_digits

    from deepbelief import DBN, DBNClassifier
    from deepbelief import loop as loop_module

    rank, _ = distributed.world()
    X, y = load_digits(return_X_y=True)
    X, y = X[:240] / 16, y[:240]

    def fit(checkpoint):
        common = dict(pretrain_epochs=3, sampler="pcd", random_state=0)
        if model == "classifier":
            estimator = DBNClassifier(hidden_layers=(16,), epochs=6, batch_size=16, **common)
            estimator.fit(X, y, checkpoint=checkpoint)
            return estimator.network_.state_dict()
        estimator = DBN(hidden_layers=(16, 16), label_epochs=2, up_down_epochs=3, **common)
        estimator.fit(X, y, checkpoint=checkpoint)
        return estimator.dbn_.state_dict()

    straight = fit(out / f"straight-{rank}.ckpt") if resume else {}  # never resumed
    done, stopped = [0], {}
    call = loop_module.call

    def signalled(callbacks, hook, *args):
        if hook == "on_batch_end":  # after each update
            loop = args[0]
            done[0] += 1
            if rank == 1 and done[0] == update:
                loop.interrupted = True  # the flag a SIGINT sets; rank 0 knows nothing of it
            stopped.update(loop=type(loop).__name__, epoch=loop.epoch, batch=loop.batch)
        return call(callbacks, hook, *args)

    loop_module.call = signalled
    try:
        fit(out / "run.ckpt")
    except KeyboardInterrupt as exc:
        stopped.update(kind=type(exc).__name__, updates=done[0])
    finally:
        loop_module.call = call
    if not resume:  # the checkpoint left for another run
        return {f"stopped.{k}": np.array(v) for k, v in stopped.items()}
    resumed = fit(out / "run.ckpt")
    arrays = {f"straight.{k}": v.detach().numpy() for k, v in straight.items()}
    arrays.update({f"resumed.{k}": v.detach().numpy() for k, v in resumed.items()})
    arrays.update({f"stopped.{k}": np.array(v) for k, v in stopped.items()})
    return arrays


def signal_during_the_epochs_vote() -> dict:
    """Rank 1's SIGINT flag set while the processes vote at the end of epoch 1 (after its
    all-reduce, before the loop reads the answer): where each process stopped."""
    from deepbelief.nn import RBM
    from deepbelief.training import Callback, RBMTrainer

    rank, _ = distributed.world()
    current = []

    class Watch(Callback):
        def on_train_begin(self, loop):
            current.append(loop)

    agree_each, fired = distributed.agree_each, []

    def late_signal(flags):
        answer = agree_each(flags)
        if rank == 1 and current and current[0].epoch == 1 and not fired:
            fired.append(True)
            current[0].interrupted = True
        return answer

    X = torch.bernoulli(torch.full((40, 6), 0.4), generator=torch.Generator().manual_seed(1))
    trainer = RBMTrainer(RBM(6, 4), epochs=4, batch_size=5, monitor_rows=0, callbacks=[Watch()],
                         generator=torch.Generator().manual_seed(2))  # fmt: skip
    distributed.agree_each = late_signal
    try:
        trainer.fit(X)
        kind = ""
    except KeyboardInterrupt as exc:
        kind = type(exc).__name__
    finally:
        distributed.agree_each = agree_each
    return {"kind": np.array(kind), "epoch": np.array(trainer.epoch),
            "batch": np.array(trainer.batch)}  # fmt: skip


def low_level_interrupted(kind: str, out: Path) -> dict:
    """PCD training through ``kind`` ("trainer": ``RBMTrainer`` with a ``Checkpoint``
    callback; "estimator": ``deepbelief.RBM(checkpoint=...)``) three times: straight through;
    interrupted on rank 1 alone after its 6th update (mid-epoch); resumed from the file as
    the docstrings say. The parameters of the first and the last."""
    from deepbelief import RBM as RBMEstimator
    from deepbelief import load
    from deepbelief import loop as loop_module
    from deepbelief.nn import RBM
    from deepbelief.training import Checkpoint, RBMTrainer

    rank, _ = distributed.world()
    out.mkdir(exist_ok=True)
    X = torch.bernoulli(torch.full((40, 6), 0.4), generator=torch.Generator().manual_seed(1))

    def fit(path):
        if kind == "estimator":
            est = RBMEstimator(4, n_iter=4, batch_size=5, sampler="pcd", n_chains=5,
                               random_state=0, checkpoint=path, checkpoint_every=100)  # fmt: skip
            return est.fit(X.numpy()).model_
        trainer = RBMTrainer(RBM(6, 4, generator=torch.Generator().manual_seed(0)),
                             sampler="pcd", epochs=4, batch_size=5, monitor_rows=0,
                             callbacks=[Checkpoint(path, every=100)],
                             generator=torch.Generator().manual_seed(2))  # fmt: skip
        return trainer.fit(X).model

    def resume(path):
        if kind == "estimator":
            return load(path).fit(X.numpy(), resume=True).model_
        return RBMTrainer.from_checkpoint(path).fit(X).model

    straight = fit(out / f"straight-{rank}.ckpt")
    done, call, stopped = [0], loop_module.call, {}

    def signalled(callbacks, hook, *args):
        if hook == "on_batch_end":
            done[0] += 1
            if rank == 1 and done[0] == 6:
                args[0].interrupted = True  # the flag a SIGINT sets
        return call(callbacks, hook, *args)

    loop_module.call = signalled
    try:
        fit(out / "run.ckpt")
    except KeyboardInterrupt as exc:
        stopped = {"kind": type(exc).__name__, "updates": done[0]}
    finally:
        loop_module.call = call
    torch.distributed.barrier()  # (the write returns on every process once it is done)
    resumed = resume(out / "run.ckpt")
    arrays = {f"straight.{k}": v.detach().numpy() for k, v in straight.state_dict().items()}
    arrays.update({f"resumed.{k}": v.detach().numpy() for k, v in resumed.state_dict().items()})
    return {**arrays, **{f"stopped.{k}": np.array(v) for k, v in stopped.items()}}


def failed_write(out: Path) -> dict:
    """Every process saves a trainer's checkpoint into a "folder" that is a file: the error
    each one gets (and that none is left waiting)."""
    from deepbelief.nn import RBM
    from deepbelief.training import RBMTrainer

    (out / "a-file").touch()
    try:
        RBMTrainer(RBM(6, 4)).save_checkpoint(out / "a-file" / "run.ckpt")
    except Exception as exc:
        return {"error": np.array(f"{type(exc).__name__}: {exc}")}
    return {"error": np.array("")}


def resumed(out: Path) -> dict:
    """The classifier of :func:`interrupted` fitted from its checkpoint (``run.ckpt``, written
    by another number of processes): its parameters and how many updates it made."""
    from sklearn.datasets import load_digits

    from deepbelief import DBNClassifier
    from deepbelief import loop as loop_module

    X, y = load_digits(return_X_y=True)
    updates, call = [0], loop_module.call

    def counted(callbacks, hook, *args):
        updates[0] += hook == "on_batch_end"
        return call(callbacks, hook, *args)

    loop_module.call = counted
    try:
        clf = DBNClassifier(hidden_layers=(16,), epochs=6, batch_size=16, pretrain_epochs=3,
                            sampler="pcd", random_state=0)  # fmt: skip
        clf.fit(X[:240] / 16, y[:240], checkpoint=out / "run.ckpt")
    finally:
        loop_module.call = call
    arrays = {f"net.{k}": v.detach().numpy() for k, v in clf.network_.state_dict().items()}
    return {**arrays, "updates": np.array(updates[0])}


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    if distributed.launched_by_torchrun():
        distributed.init_from_environment()
    rank, size = distributed.world()
    modes = {"rbm": rbm_update, "estimators": estimators, "uneven": uneven,
             "rbm-centering": lambda: rbm_update(centering=True),
             "rbm-sparsity": lambda: rbm_update(sparsity_target=0.1, sparsity_cost=0.5),
             "uneven_checkpoints": lambda: uneven_checkpoints(out),
             "signal_during_the_epochs_vote": signal_during_the_epochs_vote,
             "resumed": lambda: resumed(out),
             "failed_write": lambda: failed_write(out),
             "low_level_interrupted": lambda: {
                 f"{kind}.{k}": v for kind in ("trainer", "estimator")
                 for k, v in low_level_interrupted(kind, out / kind).items()},
             }  # fmt: skip
    if mode.startswith("interrupted:"):  # interrupted:MODEL:UPDATE[:stop]
        _, model, update, *stop = mode.split(":")
        modes[mode] = lambda: interrupted(model, int(update), out, resume=not stop)
    try:
        arrays = modes[mode]()
        np.savez(out / f"rank{rank}-of-{size}.npz", **arrays)
    finally:
        distributed.leave()


if __name__ == "__main__":
    main()
