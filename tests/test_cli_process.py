"""The installed ``deepbelief`` command as a real process: a run end to end, and ``kill -9``
during training followed by ``train --resume``, which must end with the same model as an
uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import command

import deepbelief
from deepbelief.errors import ModelFileError
from deepbelief.io import read_file


def environment():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    frame = pd.DataFrame(X, columns=list("abcde"))
    frame["label"] = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    path = tmp_path_factory.mktemp("proc") / "data.csv"
    frame.to_csv(path, index=False)
    return path


def test_installed_command_trains_predicts_and_fails_cleanly(csv_file, tmp_path):
    model = tmp_path / "model"
    done = subprocess.run(
        [*command(), "train", str(csv_file), "-o", str(model), "--layers", "8",
         "--pretrain-epochs", "2", "--epochs", "5", "--quiet"],
        capture_output=True, text=True, env=environment(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    predicted = subprocess.run(
        [*command(), "predict", str(model), str(csv_file)],
        capture_output=True, text=True, env=environment(), timeout=300,
    )  # fmt: skip
    assert predicted.returncode == 0
    assert predicted.stdout.splitlines()[0] == "label" and len(predicted.stdout.splitlines()) == 301
    bad = subprocess.run(
        [*command(), "predict", str(tmp_path / "missing"), str(csv_file)],
        capture_output=True, text=True, env=environment(), timeout=300,
    )  # fmt: skip
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "missing" in bad.stderr


RUN = ["--layers", "32", "32", "--pretrain-epochs", "6", "--epochs", "200", "--batch-size", "16",
       "--dropout", "0.2", "--no-early-stopping", "--checkpoint-every", "1", "--quiet",
       "--seed", "3"]  # fmt: skip


def fine_tuning_epoch(checkpoint: Path) -> int:
    """The fine-tuning epochs a checkpoint holds (-1 before fine-tuning or if unreadable)."""
    try:
        _, tree = read_file(checkpoint)
    except ModelFileError:
        return -1
    return tree["finetune"]["epoch"] if tree["phase"] == "finetune" else -1


def training_until(csv_file, model: Path, epoch: int, stderr) -> subprocess.Popen:
    """``train`` with RUN, running once its checkpoint holds ``epoch`` fine-tuning epochs."""
    process = subprocess.Popen(
        [*command(), "train", str(csv_file), "-o", str(model), *RUN],
        env=environment(), stdout=subprocess.DEVNULL, stderr=stderr, text=True,
    )  # fmt: skip
    checkpoint = model / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if checkpoint.exists() and fine_tuning_epoch(checkpoint) >= epoch:
            break
        time.sleep(0.01)
    if process.poll() is not None:
        pytest.fail("training ended before it could be stopped; lengthen RUN")
    return process


def test_kill_9_then_resume_equals_an_uninterrupted_run(csv_file, tmp_path):
    reference = tmp_path / "reference"
    subprocess.run(
        [*command(), "train", str(csv_file), "-o", str(reference), *RUN],
        check=True, env=environment(), timeout=600, capture_output=True,
    )  # fmt: skip
    model = tmp_path / "killed"
    process = training_until(csv_file, model, 20, stderr=subprocess.DEVNULL)
    checkpoint = model / "checkpoint.safetensors"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (model / "model.safetensors").exists()
    resumed = subprocess.run(
        [*command(), "train", "--resume", str(model)],
        capture_output=True, text=True, env=environment(), timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert not checkpoint.exists()
    one = deepbelief.load(reference / "model.safetensors")
    two = deepbelief.load(model / "model.safetensors")
    for a, b in zip(one.network_.parameters(), two.network_.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(one.history_) == len(two.history_) == 200


def test_sigterm_during_training_keeps_the_checkpoint_and_exits_143(csv_file, tmp_path):
    """A job scheduler's SIGTERM ended the command with Ctrl-C's status, 130; a shell reports
    a process that SIGTERM stopped as 143 (128 + 15)."""
    model = tmp_path / "terminated"
    process = training_until(csv_file, model, 5, stderr=subprocess.PIPE)
    checkpoint = model / "checkpoint.safetensors"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1].startswith("deepbelief: interrupted"), err
    assert fine_tuning_epoch(checkpoint) >= 5


def test_a_reader_that_stops_early_ends_the_command_quietly(csv_file, tmp_path, monkeypatch):
    """``deepbelief ... | head -1``: when the pipe's reader is gone, the command stops with the
    status of a process that SIGPIPE ends (141), no error line and no traceback."""
    from deepbelief import commands
    from deepbelief.cli import main

    def closed(args):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(commands, "evaluate", closed)
    assert main(["evaluate", str(tmp_path), str(csv_file)]) == 141
    model = tmp_path / "model"
    trained = subprocess.run(
        [*command(), "train", str(csv_file), "-o", str(model), "--layers", "4",
         "--pretrain-epochs", "1", "--epochs", "1", "--quiet"],
        capture_output=True, env=environment(), timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    for argv in (["evaluate", model, csv_file], ["predict", model, csv_file, "--proba"]):
        reader = subprocess.Popen(
            [*command(), *map(str, argv)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
        )  # fmt: skip
        reader.stdout.readline()
        reader.stdout.close()
        err = reader.stderr.read().decode()
        reader.stderr.close()
        assert reader.wait(timeout=300) in (0, 141), err
        assert "error" not in err and "Traceback" not in err, err


def test_a_reader_that_stops_early_on_large_output_gets_status_141(tmp_path):
    """Output larger than the pipe holds, whose reader takes one line and goes: the command
    used to end with status 0 and "wrote ... rows" (Python's buffered stream lost the broken
    pipe of its one large write); it now stops with 141 and says nothing."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "rows.npy", rng.random((6000, 20)).astype(np.float32))
    model = tmp_path / "model"
    trained = subprocess.run(
        [*command(), "train", str(tmp_path / "rows.npy"), "-o", str(model), "--layers", "16",
         "--pretrain-epochs", "1", "--quiet"],
        capture_output=True, env=environment(), timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    reader = subprocess.Popen(
        [*command(), "transform", str(model), str(tmp_path / "rows.npy"), "-o", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
    )  # fmt: skip
    assert reader.stdout.readline().startswith(b"h0,h1")
    reader.stdout.close()
    err = reader.stderr.read().decode()
    reader.stderr.close()
    assert reader.wait(timeout=300) == 141, err
    assert err == "", err


CTRL_C_WHILE_IMPORTING = """
import sys, types
import deepbelief.cli as cli

class Refused:  # a module that a Ctrl-C left half-imported: importing it again raised/crashed
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith(("torch.", "deepbelief.distributed")):
            raise ImportError(f"{name} imported again")

sys.meta_path.insert(0, Refused())
commands = types.ModuleType("deepbelief.commands")
def info(args):
    raise KeyboardInterrupt  # as a Ctrl-C in the middle of the commands' imports
commands.info = info
sys.modules["deepbelief.commands"] = commands
print(cli.main(["info", "model"]))
"""


def test_a_ctrl_c_while_torch_is_imported_says_interrupted_and_exits_130():
    """The handler imported deepbelief.distributed (and torch) to ask for the rank: a Ctrl-C
    in the first second of a command, while torch was being imported, ended in a traceback
    ("partially initialized module 'torch'") or a segmentation fault."""
    import sys

    done = subprocess.run([sys.executable, "-c", CTRL_C_WHILE_IMPORTING], capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["130"] and done.stderr == "deepbelief: interrupted\n"
