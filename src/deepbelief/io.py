"""Model files: safetensors tensors plus a versioned JSON config. Never pickle.

A file holds, in the safetensors header's metadata, the format name and version, the package
version, the kind of object (``"RBM"``, ``"nn.RBM"``, ``"checkpoint"``, ...), a JSON tree, and
a SHA-256 checksum of the kind, the tree, the tensors' layout (names, dtypes, shapes, offsets)
and their bytes, so a tampered file is refused rather than silently loaded (format version 1
files, whose checksum covers only the tree and the tensor bytes, are still read). Writes are
atomic: a temporary file in the same folder, then a rename.

Classes that can be saved register themselves with :func:`register` and provide
``_to_state() -> dict`` and ``_from_state(state)`` (a classmethod); tensors may appear anywhere
in the state tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import stat
import struct
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ._version import __version__
from .errors import DeepBeliefError, ModelFileError

FORMAT = "deepbelief"
FORMAT_VERSION = 2  # 2: the checksum also covers the kind and the tensor layout
_REGISTRY: dict[str, type] = {}


def register(kind: str):
    """Class decorator: make instances of the class saveable under the name ``kind``.

    Parameters
    ----------
    kind : str
        The name written in the file; :func:`load` finds the class by it.
    """

    def decorate(cls):
        _REGISTRY[kind] = cls
        cls._file_kind = kind
        return cls

    return decorate


# ----------------------------------------------------------------------- state trees
def pack(tree) -> tuple[object, dict[str, torch.Tensor]]:
    """Split a nested structure into a JSON-able tree and a flat dict of tensors.

    Parameters
    ----------
    tree : object
        Nested dicts (str or int keys), lists, tuples, None, bools, numbers, strings, tensors
        and NumPy arrays (stored as tensors too).

    Returns
    -------
    (config, tensors) : JSON-able tree with ``{"__tensor__": name}`` leaves, dict of tensors

    Raises
    ------
    TypeError
        A value or dict key of a type that cannot be saved.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(node, key):
        if isinstance(node, np.ndarray):
            node = torch.from_numpy(np.ascontiguousarray(node))
        if isinstance(node, torch.Tensor):
            name = key or "tensor"
            tensors[name] = node.detach().cpu().contiguous().clone()
            return {"__tensor__": name}
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                label = k if isinstance(k, str) else f"__int__:{k}"
                if not isinstance(k, (str, int)):
                    raise TypeError(f"cannot save a dict key of type {type(k).__name__}")
                out[label] = walk(v, f"{key}.{k}" if key else str(k))
            return out
        if isinstance(node, tuple):  # kept apart from lists, so parameters round-trip exactly
            return {"__tuple__": [walk(v, f"{key}.{i}") for i, v in enumerate(node)]}
        if isinstance(node, list):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(node)]
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if hasattr(node, "item"):  # numpy scalars
            return node.item()
        raise TypeError(f"cannot save a value of type {type(node).__name__} at {key!r}")

    return walk(tree, ""), tensors


def unpack(tree, tensors: dict[str, torch.Tensor]):
    """Inverse of :func:`pack`.

    Parameters
    ----------
    tree : object
        The JSON-able tree.
    tensors : dict of str to Tensor
        The tensors its leaves name.

    Returns
    -------
    object
        The nested structure.
    """
    if isinstance(tree, dict):
        if set(tree) == {"__tensor__"}:
            return tensors[tree["__tensor__"]]
        if set(tree) == {"__tuple__"}:
            return tuple(unpack(v, tensors) for v in tree["__tuple__"])
        out = {}
        for k, v in tree.items():
            key = int(k[len("__int__:") :]) if k.startswith("__int__:") else k
            out[key] = unpack(v, tensors)
        return out
    if isinstance(tree, list):
        return [unpack(v, tensors) for v in tree]
    return tree


# ----------------------------------------------------------------------- raw files
def _checksum_v1(config_json: str, data: bytes) -> str:
    """Format version 1: the config and the tensor bytes."""
    return hashlib.sha256(config_json.encode("utf-8", "surrogatepass") + data).hexdigest()


def _layout(header: dict) -> str:
    """The safetensors header without its metadata (names, dtypes, shapes, offsets), canonical."""
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    return json.dumps(tensors, sort_keys=True, separators=(",", ":"))


def _checksum(kind: str, version: int, layout: str, config_json: str, data: bytes) -> str:
    """Format version 2: also the kind and the tensors' dtypes, shapes and offsets, so that
    a changed dtype or shape in the safetensors header cannot pass unnoticed."""
    described = json.dumps([FORMAT, version, kind, layout, config_json]).encode()
    return hashlib.sha256(described + data).hexdigest()


class OutputPathError(DeepBeliefError, OSError):
    """An output path that deepbelief refuses to replace (a device, FIFO, socket, folder or
    symbolic link): atomic writes rename a temporary file over the path, which would swap a
    device such as ``/dev/null`` for a regular file."""


_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)
_UMASK_LOCK = threading.Lock()


def file_kind(mode: int) -> str:
    """``"a character device"``, ``"a FIFO"``, ... for an ``st_mode`` (``"a regular file"``)."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def check_output_path(
    path: str | os.PathLike, advice: str = "choose another output path"
) -> os.stat_result | None:
    """Refuse an output path that is not a regular file (or absent); returns its ``lstat``
    (None when absent). Symbolic links are refused, not followed. ``advice`` ends the
    message.

    Raises
    ------
    OutputPathError
        ``path`` is a device, FIFO, socket, folder or symbolic link.
    OSError
        ``path`` cannot be examined (a missing folder, no permission), naming ``path``.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, os.fspath(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise OutputPathError(
            f"{os.fspath(path)}: is {file_kind(info.st_mode)}; deepbelief writes only regular "
            f"files and will not replace it ({advice})"
        )
    return info


def current_umask() -> int:
    """The process umask, read without changing it where the system allows
    (``/proc/self/status``), else by setting and restoring it under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename).

    Only a regular file (or nothing) is replaced: a device, FIFO, socket, folder or symbolic
    link at ``path`` raises :class:`OutputPathError` and is left alone. A new file gets the
    mode ``0o666`` less the umask, as ``open()`` would give it; a replaced file keeps its
    permission bits. Errors name ``path``, never the temporary file.

    Parameters
    ----------
    path : str or PathLike
        The destination; its folder must exist.
    payload : bytes
        The whole content.
    """
    with atomic_writer(path) as f:
        f.write(payload)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike):
    """:func:`atomic_write_bytes` a piece at a time: a binary file to write, which replaces
    ``path`` when the block ends without an error (and is removed when it raises)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    before = check_output_path(path)
    mode = stat.S_IMODE(before.st_mode) if before else 0o666 & ~current_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        check_output_path(path)  # it may have changed while we wrote
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, OutputPathError):
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def write_file(path, kind: str, tree) -> None:
    """Write a state tree (with tensors anywhere in it) to ``path``, atomically.

    Parameters
    ----------
    path : str or PathLike
        The destination file.
    kind : str
        What the tree describes (a name given to :func:`register`, or ``"checkpoint"``).
    tree : dict
        Nested dicts, lists, tuples, numbers, strings, tensors and NumPy arrays.
    """
    config, tensors = pack(tree)
    config_json = json.dumps(config, sort_keys=True)
    body = st_save(tensors, metadata={"placeholder": "x"})
    (size,) = struct.unpack("<Q", body[:8])
    layout = _layout(json.loads(body[8 : 8 + size]))
    data = body[8 + size :]
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "package_version": __version__,
        "kind": kind,
        "config": config_json,
        "sha256": _checksum(kind, FORMAT_VERSION, layout, config_json, data),
    }
    atomic_write_bytes(path, st_save(tensors, metadata=metadata))


def _header(payload: bytes, path) -> tuple[dict, bytes]:
    if len(payload) < 8:
        raise ModelFileError(f"{path}: file is truncated or not a deepbelief model file")
    (size,) = struct.unpack("<Q", payload[:8])
    if size > len(payload) - 8:
        raise ModelFileError(
            f"{path}: file is truncated or not a deepbelief model file (header says {size} "
            f"bytes, {len(payload) - 8} follow)"
        )
    try:
        header = json.loads(payload[8 : 8 + size])
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelFileError(f"{path}: not a deepbelief model file (unreadable header)") from exc
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: not a deepbelief model file (unreadable header)")
    return header, payload[8 + size :]


def read_file(path) -> tuple[str, object]:
    """Read a file written by :func:`write_file`.

    Parameters
    ----------
    path : str or PathLike
        The file.

    Returns
    -------
    (kind, tree) : str and the state tree, with tensors in place

    Raises
    ------
    ModelFileError
        When the file is missing, truncated, corrupt, tampered with, foreign or of a newer
        format version.
    """
    try:
        payload = Path(path).read_bytes()
    except IsADirectoryError as exc:
        raise ModelFileError(f"{path}: is a folder, not a model file") from exc
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read model file ({exc.strerror or exc})") from exc
    header, data = _header(payload, path)
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a deepbelief model file")
    try:
        version = int(meta["format_version"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: model file has no valid format version") from exc
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in format version {version} by deepbelief "
            f"{meta.get('package_version', '?')}; this deepbelief ({__version__}) reads up to "
            f"version {FORMAT_VERSION}: upgrade deepbelief"
        )
    if version < 1:
        raise ModelFileError(f"{path}: model file has an invalid format version ({version})")
    kind, config_json = meta.get("kind", ""), meta.get("config", "")
    if not isinstance(kind, str) or not isinstance(config_json, str):
        raise ModelFileError(f"{path}: model file is corrupt (malformed metadata)")
    if version == 1:
        expected = _checksum_v1(config_json, data)
    else:
        expected = _checksum(kind, version, _layout(header), config_json, data)
    if meta.get("sha256") != expected:
        raise ModelFileError(f"{path}: model file is corrupt (checksum mismatch)")
    try:
        tensors = st_load(payload)
        tree = unpack(json.loads(config_json), tensors)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # safetensors raises its own kinds, and panics (BaseException)
        raise ModelFileError(
            f"{path}: model file is corrupt ({type(exc).__name__}: {exc})"
        ) from exc
    return kind, tree


# ----------------------------------------------------------------------- public API
#: The modules whose classes register the kinds a file may hold (imported by :func:`load` on
#: first need, not here: ``import deepbelief.io`` stays cheap, and they import this module).
_REGISTERING_MODULES = (
    "deepbelief.nn",
    "deepbelief.training",
    "deepbelief.estimators",
    "deepbelief.dbn_estimators",
    "deepbelief.outliers",
    "deepbelief.imputer",
)


def _requested_device(device) -> torch.device | None:
    """``device`` resolved, or None; ValueError naming it when this machine lacks it."""
    if device is None:
        return None
    from .loop import resolve_device  # the registry's classes live above this module too

    return resolve_device(device)


def _import_registering_modules() -> None:
    """Import every module that registers a kind, so that :func:`load` knows them all."""
    for name in _REGISTERING_MODULES:
        importlib.import_module(name)


def save(obj, path) -> None:
    """Save a deepbelief object (estimator, module or checkpoint) to ``path``.

    The file is safetensors with a JSON config; nothing is pickled. The write is atomic.

    Parameters
    ----------
    obj : object
        An instance of a class registered with :func:`register`.
    path : str or PathLike
        The destination file.

    Raises
    ------
    TypeError
        When ``obj`` is not of a saveable class (or holds a value that cannot be saved).
    """
    kind = getattr(type(obj), "_file_kind", None)
    if kind is None:
        raise TypeError(f"deepbelief cannot save objects of type {type(obj).__name__}")
    write_file(path, kind, obj._to_state())


def load(path, device=None):
    """Load an object saved with :func:`save`.

    Parameters
    ----------
    path : str or PathLike
        The model file.
    device : str or torch.device, optional
        Where to put the model: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``;
        an estimator also keeps it as its ``device`` (and refits there). Default: the device
        it was saved with when this machine has it, else the CPU.

    Returns
    -------
    object
        The estimator or module that was saved.

    Raises
    ------
    ModelFileError
        When the file is missing, corrupt, tampered with, foreign or of a newer format.
    """
    target = _requested_device(device)
    kind, tree = read_file(path)
    if isinstance(tree, dict) and "ranks" in tree:  # written by a distributed run's processes
        from .distributed import own_state  # above this module: it packs with this one's

        tree = own_state(tree)
    cls = _REGISTRY.get(kind)
    if cls is None:
        _import_registering_modules()
        cls = _REGISTRY.get(kind)
    if cls is None:
        raise ModelFileError(f"{path}: unknown object kind {kind!r} in model file")
    try:
        if target is None:
            return cls._from_state(tree)
        if isinstance(tree.get("params"), dict) and "device" in tree["params"]:
            tree["params"]["device"] = device if isinstance(device, str) else str(device)
            return cls._from_state(tree)  # an estimator: it loads on its device
        if kind == "checkpoint":
            return cls._from_state(tree, device=target)
        return cls._from_state(tree).to(target)  # a module
    except ModelFileError:
        raise
    except Exception as exc:  # a file that passed the checksum but does not fit the class
        raise ModelFileError(
            f"{path}: model file does not describe a valid {kind} ({exc})"
        ) from exc
