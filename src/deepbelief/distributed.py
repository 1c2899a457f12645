"""Data-parallel training with torch.distributed.

Every fit loop (:class:`deepbelief.loop.FitLoop`) trains data-parallel when a default process
group is initialised (by ``torchrun`` and :func:`init_from_environment`, or by the caller's own
``torch.distributed.init_process_group``): each process trains on its share of every epoch's
rows, the gradients of each update are averaged over the processes (an all-reduce) before the
step, so every process holds the same parameters, which is the update of one process on the
concatenated batch; persistent chains stay each process's own. ``batch_size`` is per process.
Only the process of rank 0 writes files (:func:`is_main`).

Nothing here does anything in a single process: :func:`world` is ``(0, 1)`` without an
initialised process group.
"""

from __future__ import annotations

import contextlib
import hashlib
import os

import torch
import torch.distributed as dist

from .errors import ModelFileError
from .io import pack, unpack, write_file

#: Environment variables torchrun sets for each process it starts.
ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_distributed() -> bool:
    """Whether this process trains with others."""
    return world()[1] > 1


def is_main() -> bool:
    """Whether this process writes files and reports: rank 0, or the only process."""
    return world()[0] == 0


def launched_by_torchrun() -> bool:
    """Whether the environment asks for more than one process (``WORLD_SIZE`` > 1)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def init_from_environment() -> bool:
    """Join the process group that torchrun's environment describes (gloo on the CPU, NCCL
    when this machine has CUDA GPUs, each process on the GPU of its ``LOCAL_RANK``); returns
    whether a group is (now) initialised. Does nothing in a single process."""
    if is_distributed() or not launched_by_torchrun():
        return is_distributed()
    missing = [name for name in ENVIRONMENT if name not in os.environ]
    if missing:
        raise ValueError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} not set: "
            "start the processes with torchrun"
        )
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "nccl"
        torch.cuda.set_device(local_device())
    dist.init_process_group(backend)
    return True


def leave() -> None:
    """Leave the process group (a process that exits without leaving it aborts)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device() -> torch.device:
    """This process's CUDA device (``cuda:LOCAL_RANK``, modulo the devices present)."""
    index = int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", index % max(1, torch.cuda.device_count()))


def _carrier(like: torch.Tensor | None = None) -> torch.device:
    """The device collectives run on: the backend's (NCCL needs CUDA tensors)."""
    if dist.get_backend() == "nccl":
        return like.device if like is not None and like.is_cuda else local_device()
    return torch.device("cpu")


def shard(order: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """Process ``rank``'s rows of an epoch's ``order``: every ``size``-th from position
    ``rank``, padded by wrapping around so that every process has ``ceil(n / size)`` (as
    ``torch.utils.data.DistributedSampler`` does)."""
    if size == 1:
        return order
    per = -(-len(order) // size)
    if per * size != len(order):
        order = order.repeat(-(-per * size // len(order)))[: per * size]
    return order[rank::size]


def shard_size(n_rows: int, size: int) -> int:
    """Rows per process of an epoch over ``n_rows`` rows."""
    return -(-n_rows // size)


def average_(tensors, vote: bool | None = None):
    """Replace each tensor (in place) by its mean over the processes, in one all-reduce.

    With ``vote``, the same all-reduce also tells whether ``vote`` is true on any process:
    returned as a one-element bool tensor on the collectives' device (read it when needed:
    on a GPU, reading waits for the all-reduce). Without, returns None."""
    tensors = list(tensors)
    if not is_distributed() or not (tensors or vote is not None):
        return None if vote is None else torch.tensor([bool(vote)])
    carrier = _carrier(tensors[0] if tensors else None)
    parts = [t.detach().reshape(-1).to(carrier, torch.float64) for t in tensors]
    if vote is not None:
        parts.append(torch.tensor([float(bool(vote))], dtype=torch.float64, device=carrier))
    flat = torch.cat(parts)
    dist.all_reduce(flat)
    anyone = None if vote is None else flat[-1:] > 0
    flat = flat[: len(flat) - (vote is not None)] / world()[1]
    for t, part in zip(tensors, flat.split([t.numel() for t in tensors]), strict=True):
        t.detach().copy_(part.view_as(t))
    return anyone


def average_gradients(parameters, loss=None, vote: bool = False):
    """Average the parameters' gradients over the processes (those with a gradient, the same
    on every process), with ``loss`` (a float, or a tensor on the loss's device) and ``vote``
    in the same all-reduce. Returns ``(mean loss, whether vote is true on any process)``, the
    latter as :func:`average_` returns it."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if loss is None:
        return None, average_(grads, vote)
    scalar = torch.as_tensor(loss, dtype=torch.float64).detach().reshape(1)
    anyone = average_([*grads, scalar], vote)
    return (scalar.reshape(()) if isinstance(loss, torch.Tensor) else float(scalar)), anyone


def broadcast_(tensors, src: int = 0) -> None:
    """Copy process ``src``'s values of the tensors into every process's (in place)."""
    if not is_distributed():
        return
    for t in tensors:
        carrier = _carrier(t)
        buffer = t.detach().to(carrier).clone()
        dist.broadcast(buffer, src)
        t.detach().copy_(buffer)


def shared_seed(generator: torch.Generator | None = None) -> int:
    """A seed drawn by rank 0 (from ``generator`` when given) and the same on every process."""
    device = generator.device if generator is not None else "cpu"
    seed = torch.randint(2**62, (1,), generator=generator, device=device).cpu()
    broadcast_([seed])
    return int(seed)


def gathered(value: float) -> list[float]:
    """``value`` of every process, in rank order (every process gets the same list)."""
    if not is_distributed():
        return [value]
    values = [torch.zeros(1, dtype=torch.float64, device=_carrier()) for _ in range(world()[1])]
    dist.all_gather(values, torch.tensor([value], dtype=torch.float64, device=_carrier()))
    return [v.item() for v in values]


def gathered_objects(value) -> list:
    """``value`` (any picklable object) of every process, in rank order, on every process."""
    if not is_distributed():
        return [value]
    values = [None] * world()[1]
    with _objects_device():
        dist.all_gather_object(values, value)
    return values


def agree(flag: bool) -> bool:
    """Whether ``flag`` is true on any process (every process gets the same answer)."""
    return agree_each([flag])[0]


def agree_each(flags) -> list[bool]:
    """:func:`agree` for each of ``flags``, in one all-reduce."""
    flags = [bool(flag) for flag in flags]
    if not is_distributed():
        return flags
    value = torch.tensor([float(flag) for flag in flags], device=_carrier())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return [bool(v) for v in value.tolist()]


def main_says(flag: bool) -> bool:
    """Rank 0's ``flag``, on every process (``flag`` itself in a single process)."""
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([float(bool(flag))], device=_carrier())
    dist.broadcast(value, 0)
    return bool(value.item())


def average_metrics(metrics: dict) -> None:
    """Replace the float values of ``metrics`` (in place) by their means over the processes;
    the keys must be the same on every process."""
    keys = sorted(k for k, v in metrics.items() if isinstance(v, float))
    if not keys or not is_distributed():
        return
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64)
    average_([values])
    metrics.update(zip(keys, values.tolist(), strict=True))


# ---------------------------------------------------------------------- checkpoints
def gather_differences(tree) -> list | None:
    """What each process's ``tree`` holds that rank 0's does not, so that one file written by
    rank 0 lets every process continue exactly (persistent chains, random streams: each
    process's own). Collective: every process calls it, at the same point of training.

    ``tree`` is nested dicts, lists and tuples of tensors and plain values. Rank 0 sends
    the others a digest of each of its parts (SHA-256: a few bytes a part, not its values),
    and each process sends rank 0 the parts whose digests differ. Returns, on rank 0, one
    list per process of ``[path, value]`` pairs (a path: the keys and indices leading to a
    value that differs; rank 0's list is empty); None on the other processes and in a
    single process."""
    if not is_distributed():
        return None
    mine = unpack(*pack(tree))  # on the CPU, as the file will hold it
    digests = _digests(mine)
    box = [digests if is_main() else None]
    with _objects_device():
        dist.broadcast_object_list(box, src=0)  # in transit only: nothing is stored pickled
        own = [[path, value] for path, value in _differences(box[0], digests, mine, [])]
        parts = [None] * world()[1] if is_main() else None
        dist.gather_object(own, parts, dst=0)
    return parts


def _digests(tree) -> dict:
    """``tree``'s digest: ``{"kind", "sha", "keys", "parts"}``, the parts' own for dicts,
    lists and tuples (their ``keys``: a dict's, in order; their SHA-256 covers the parts')."""
    if isinstance(tree, (dict, list, tuple)):
        keys = list(tree) if isinstance(tree, dict) else list(range(len(tree)))
        values = tree.values() if isinstance(tree, dict) else tree
        parts = [_digests(value) for value in values]
        sha = hashlib.sha256(repr((type(tree).__name__, keys)).encode())
        for part in parts:
            sha.update(part["sha"])
        return {"kind": type(tree).__name__, "sha": sha.digest(), "keys": keys, "parts": parts}
    sha = hashlib.sha256(type(tree).__name__.encode())
    if isinstance(tree, torch.Tensor):
        sha.update(repr((tree.dtype, tuple(tree.shape))).encode())
        sha.update(tree.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        sha.update(repr(tree).encode())
    return {"kind": "value", "sha": sha.digest()}


def write_together(path, kind: str, tree: dict, together: bool = True) -> None:
    """Write ``tree`` to ``path`` as a ``kind`` file (:func:`deepbelief.io.write_file`), in a
    distributed run from rank 0. When the processes call it ``together`` (at the same point
    of training), the file holds, under ``"ranks"``, what each process holds of its own
    (:func:`gather_differences`; :func:`own_state` gives it back), and every process returns
    once it is written (a failed write raises on every process). Else rank 0 writes its own
    state alone and the other processes do nothing."""
    if not (together and is_distributed()):
        if is_main():
            write_file(path, kind, tree)
        return
    tree = {**tree, "ranks": gather_differences(tree)}
    failure = None
    if is_main():
        try:
            write_file(path, kind, tree)
        except Exception as exc:  # said on every process, not left for the next collective
            failure = exc
    if not main_says(failure is None):
        raise failure or ModelFileError(f"{path}: rank 0 of this distributed run could not "
                                        "write the checkpoint (its error says why)")  # fmt: skip


def _objects_device():
    """Where torch's object collectives stage their bytes: the current CUDA device under
    NCCL, made this process's own (a process group initialised without
    ``torch.cuda.set_device`` would have every process stage on GPU 0)."""
    if dist.get_backend() == "nccl":
        return torch.cuda.device(_carrier())
    return contextlib.nullcontext()


def own_state(tree: dict, key: str = "ranks") -> dict:
    """``tree`` (a state written with :func:`gather_differences`'s lists under ``key``) as
    this process continues from it: with its own differences when as many processes wrote
    it as run now, else rank 0's state as it is (``key`` removed either way)."""
    parts = tree.get(key)
    tree = {k: v for k, v in tree.items() if k != key}
    rank, size = world()
    if parts is None or len(parts) != size:
        return tree
    for path, value in parts[rank]:
        tree = _replaced(tree, list(path), value)
    return tree


def _differences(reference: dict, digests: dict, tree, path: list):
    """``(path, value)`` of each part of ``tree`` (whose :func:`_digests` are ``digests``)
    that is not the same as the part of ``reference`` (another tree's digests): a container
    of other kind or keys whole, else the parts that differ."""
    if reference["sha"] == digests["sha"]:
        return
    if reference["kind"] != digests["kind"] or reference["kind"] == "value":
        yield path, tree
    elif reference["keys"] != digests["keys"]:
        yield path, tree
    else:
        values = tree.values() if isinstance(tree, dict) else tree
        for key, value, ref, own in zip(
            digests["keys"], values, reference["parts"], digests["parts"], strict=True
        ):
            yield from _differences(ref, own, value, [*path, key])


def _replaced(node, path: list, value):
    """``node`` with the part at ``path`` replaced by ``value`` (the containers on the way
    copied)."""
    if not path:
        return value
    key, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, key: _replaced(node[key], rest, value)}
    items = list(node)
    items[key] = _replaced(items[key], rest, value)
    return tuple(items) if isinstance(node, tuple) else items
