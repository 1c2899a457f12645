"""What the machine can give, checked before any work: the device and the memory a request
needs (the command refuses with the figures instead of failing after allocating)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UsageError


def check_device(text: str) -> None:
    """``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``, and available here
    (:func:`deepbelief.loop.resolve_device`'s rule, in the command's words)."""
    from .loop import device_problem

    problem = device_problem(text)
    if problem:
        raise UsageError(f"--device {text}: {problem}")


def available_memory() -> int:
    """Bytes of memory this process can still get: the least of what the machine has free
    (``MemAvailable``, else free pages), what its control group allows more (cgroup v2's
    ``memory.max``, v1's ``memory.limit_in_bytes``) and its address-space limit
    (``ulimit -v``) less what it maps already."""
    return min(_free_memory(), _cgroup_room(), _address_space_room())


def _free_memory() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return UNKNOWN


#: what a figure that cannot be read counts as: no limit
UNKNOWN = 1 << 62

_CGROUPS = (  # (limit, usage) files: cgroup v2, then v1
    ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
    ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
)


def _cgroup_room() -> int:
    for limit_file, usage_file in _CGROUPS:
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= UNKNOWN:  # v1 writes a huge number for none
            return UNKNOWN
        return max(0, int(limit) - usage)
    return UNKNOWN


def _address_space_room() -> int:
    try:
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit == resource.RLIM_INFINITY:
            return UNKNOWN
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return max(0, limit - int(line.split()[1]) * 1024)
    except (ImportError, OSError, ValueError, IndexError):
        pass
    return UNKNOWN


def gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def check_memory(needed: float, what: str) -> None:
    available = available_memory()
    if needed > available:
        raise UsageError(
            f"{what} need about {gb(needed)} of memory; this process can have {gb(available)} "
            "more (free memory, its control group's and its address-space limit)"
        )


def training_memory(layers, n_visible: int | None, rows: int | None) -> int:
    """Bytes (float32) that training ``layers`` needs at the least: each weight matrix and
    bias with its gradient and two optimiser states, plus the cached input of the widest
    layer for every row. Unknown ``n_visible``/``rows`` count as nothing."""
    widths = ([n_visible] if n_visible else []) + [int(w) for w in layers]
    params = sum(a * b + a + b for a, b in zip(widths, widths[1:]))
    cached = 2 * (rows or 0) * max(widths)
    return 4 * (4 * params + cached)


def check_training_memory(layers, n_visible, rows, device=None) -> None:
    """UsageError when training ``layers`` on ``rows`` rows needs more memory than this
    process can have, or, on a CUDA ``device`` (where the rows are copied whole), more than
    the GPU has free."""
    what = "--layers " + " ".join(map(str, layers))
    if rows:
        what += f" on {rows} rows of {n_visible} inputs"
    needed = training_memory(layers, n_visible, rows)
    check_memory(needed, what)
    if device is not None and device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        if needed > free:
            raise UsageError(
                f"{what} need about {gb(needed)} of GPU memory; {device} has {gb(free)} free "
                "(--device cpu trains in the machine's memory)"
            )


def sampling_memory(estimator, n: int) -> int:
    """Bytes that drawing ``n`` samples needs at the least: a few float32 copies of every
    layer's states for each sample, and the float64 rows written back."""
    rbms = getattr(getattr(estimator, "dbn_", None), "rbms", None) or []
    if not rbms:
        return 0
    widths = [rbms[0].n_visible] + [rbm.n_hidden for rbm in rbms]
    return n * (16 * sum(widths) + 24 * widths[0])
