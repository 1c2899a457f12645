"""Paths the command reads and writes, checked before any work: outputs are regular files or
absent (never a device, FIFO, folder or symbolic link), unreadable inputs are one line, and
the model folder that ``train`` writes is locked for the run and left as it was when the run
fails."""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import stat
from pathlib import Path

from .errors import ModelFileError, UsageError
from .io import check_output_path, file_kind
from .model_dir import CARD_FILE, CHECKPOINT_FILE, MODEL_FILE, RUN_FILE, write_json


def check_input_path(path, what: str) -> None:
    """An input path that cannot be read (a symbolic-link loop, no permission) is one line;
    a missing one is left to the reader, whose message says more."""
    try:
        os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc} ({what})") from None


def output_file(path: Path | None, inputs=()) -> Path | None:
    """An output file, checked before any work: None (or ``-``) is standard output; a path
    must be a regular file or not exist yet, in an existing folder, and none of the
    command's ``inputs`` (:func:`check_not_input`)."""
    if path is None or str(path) == "-":
        return None
    check_not_input(path, inputs)
    check_output_path(path, "choose another output path, or -o - for standard output")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{path}: the folder {parent} does not exist")
    return path


def check_not_input(path, inputs) -> None:
    """UsageError when the output ``path`` is one of the command's ``inputs`` (the same file,
    through any link) or lies inside an input folder (a model's): the command would write
    over what it reads."""
    target = Path(os.path.realpath(path))
    for given in inputs:
        if given is None:
            continue
        source = Path(os.path.realpath(given))
        if target == source or source in target.parents:
            where = "" if target == source else "inside "
            raise UsageError(
                f"{path}: is {where}the input {given}; deepbelief will not write over what it "
                "reads: choose another output"
            )


def output_folder(folder: Path, names=(), inputs=()) -> None:
    """An output folder, checked before any work: a folder or nothing (never a symbolic link,
    a file or a device), whose files ``names`` are regular files or absent, neither one of
    the command's ``inputs`` nor inside one (:func:`check_not_input`)."""
    check_not_input(folder, inputs)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(folder)) from None
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(
            f"{folder}: is {file_kind(info.st_mode)}, not a folder; deepbelief will not "
            "write into or replace it"
        )
    for name in names:
        check_output_path(folder / name)


# ---------------------------------------------------------------------- the model folder
LOCK_FILE = ".deepbelief.lock"
MODEL_FILES = (MODEL_FILE, CARD_FILE, RUN_FILE, CHECKPOINT_FILE)
BACKUP = ".{}.deepbelief-backup"


class ModelFolder:
    """The folder ``train`` writes, held for the run.

    On entry: refuse a path that is not a folder (a file, a device, a symbolic link), a folder
    holding another model, an interrupted run or other files (unless ``overwrite``; other files
    are never deleted), or any of the model's file names taken by something that is not a
    regular file; create the folder if needed and lock it (``flock`` on ``.deepbelief.lock``),
    so a second training into it fails at once. A model's earlier ``run.json`` and checkpoint
    are kept aside (hard links) until the run ends. On a failure the folder is put back as it
    was (a created folder is removed); on KeyboardInterrupt ``run.json`` and the checkpoint
    stay for ``--resume``; the lock is released in every case.
    """

    def __init__(self, directory: Path, resume: bool = False, overwrite: bool = False):
        self.directory = Path(directory)
        self.resume, self.overwrite = resume, overwrite
        self.created: list[Path] = []
        self.backups: dict[str, Path] = {}
        self.wrote_run = self.finished = False
        self.lock_fd: int | None = None
        self.check()  # before creating anything

    # -------------------------------------------------------------- checks
    def check(self) -> None:
        d = self.directory
        try:
            info = os.lstat(d)
        except FileNotFoundError:
            if self.resume:
                raise ModelFileError(f"{d}: no such model directory to resume") from None
            return
        except OSError as exc:
            raise UsageError(f"{d}: {exc.strerror or exc}") from None
        if stat.S_ISLNK(info.st_mode):
            raise UsageError(f"{d}: is a symbolic link; give the model folder's real path")
        if not stat.S_ISDIR(info.st_mode):
            raise UsageError(f"{d}: exists and is not a folder ({file_kind(info.st_mode)})")
        for name in MODEL_FILES:
            check_output_path(d / name)
        if self.resume:
            return
        names = {p.name for p in d.iterdir()} - {LOCK_FILE}
        names = {n for n in names if not (n.startswith(".") and n.endswith(".deepbelief-backup"))}
        if self.overwrite or not names:
            return
        if CHECKPOINT_FILE in names or (RUN_FILE in names and MODEL_FILE not in names):
            raise UsageError(
                f"{d}: holds an interrupted run; continue it with 'deepbelief train --resume "
                f"{d}', or discard it with --overwrite (or delete {d / CHECKPOINT_FILE})"
            )
        if names & set(MODEL_FILES):
            raise UsageError(
                f"{d}: holds another model; use another folder, or --overwrite to replace it"
            )
        shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
        raise UsageError(
            f"{d}: is not empty (holds {shown}); use a new or empty folder, or --overwrite to "
            "write the model beside those files"
        )

    # -------------------------------------------------------------- lifecycle
    def __enter__(self):
        try:
            self._create()
            self._lock()
            self.check()  # again, under the lock
            self._remove_stale_temporaries()
        except BaseException:
            self._release()
            self._remove_created()
            raise
        return self

    def _remove_stale_temporaries(self) -> None:
        """The temporary files of the model's own atomic writes (``.NAME.XXXXXXXX.tmp``, see
        :func:`deepbelief.io.atomic_write_bytes`) that a killed run left: under the lock no
        other run is writing them."""
        for name in MODEL_FILES:
            for stale in self.directory.glob(f".{glob.escape(name)}.*.tmp"):
                if stale.is_file() and not stale.is_symlink():
                    stale.unlink(missing_ok=True)

    def _create(self) -> None:
        missing = []
        path = self.directory
        while not os.path.lexists(path):
            missing.append(path)
            if path.parent == path:
                break
            path = path.parent
        for folder in reversed(missing):
            try:
                folder.mkdir()
            except FileExistsError:
                continue  # made meanwhile by someone else: not ours to remove
            self.created.append(folder)

    def _lock(self) -> None:
        path = self.directory / LOCK_FILE
        check_output_path(path)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise UsageError(
                    f"{self.directory}: another deepbelief training is writing to this folder "
                    f"(it holds {path}); wait for it to finish or use another folder"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the holder before us may have removed the file: lock the current one
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.lock_fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return
            os.close(fd)

    def _release(self) -> None:
        if self.lock_fd is None:
            return
        try:
            (self.directory / LOCK_FILE).unlink(missing_ok=True)  # while still holding it
        finally:
            os.close(self.lock_fd)
            self.lock_fd = None

    def _remove_created(self) -> None:
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only when empty: never anyone else's files
            except OSError:
                break
        self.created = []

    def write_run(self, settings: dict) -> None:
        """Write ``run.json``, keeping the earlier run's files aside until the run ends."""
        for name in (RUN_FILE, CHECKPOINT_FILE):
            path = self.directory / name
            if os.path.lexists(path):
                backup = self.directory / BACKUP.format(name)
                backup.unlink(missing_ok=True)
                try:
                    os.link(path, backup)  # the same inode comes back on a roll-back
                except OSError:  # a file system without hard links
                    shutil.copy2(path, backup)
                self.backups[name] = backup
        (self.directory / CHECKPOINT_FILE).unlink(missing_ok=True)  # discarded (--overwrite)
        self.wrote_run = True
        write_json(self.directory / RUN_FILE, settings)

    def done(self) -> None:
        self.finished = True

    def __exit__(self, kind, exc, tb):
        interrupted = isinstance(exc, KeyboardInterrupt)  # also a distributed run's agreed one
        try:
            if self.finished or interrupted or self.resume:
                for backup in self.backups.values():
                    backup.unlink(missing_ok=True)
            else:
                self._roll_back()
        finally:
            self._release()
            if not self.finished and (not interrupted or not self.wrote_run):
                self._remove_created()
        return False

    def _roll_back(self) -> None:
        """A failed run: the folder as it was before (the earlier files, same inodes)."""
        if not self.wrote_run:
            return
        for name in (RUN_FILE, CHECKPOINT_FILE):
            path = self.directory / name
            backup = self.backups.get(name)
            if backup is not None:
                os.replace(backup, path)
            else:
                path.unlink(missing_ok=True)
