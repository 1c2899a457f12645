"""Data-parallel training with torch.distributed (gloo on the CPU), in processes started by
torchrun: the update of N processes equals one process's on the concatenated batch, every
process ends with the same parameters, and the command line trains one model."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepbelief import distributed
from deepbelief.cli import main
from deepbelief.io import pack, unpack

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT = 300


def _environment() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in distributed.ENVIRONMENT}
    env["OMP_NUM_THREADS"] = "1"  # two processes on a 2-core machine
    return env


def torchrun(*args, cwd=None, processes=2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={processes}", *map(str, args)]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd,
                          env=_environment())  # fmt: skip


def _worker(mode, out, processes):
    if processes == 1:
        command = [sys.executable, str(WORKER), mode, str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT,
                              env=_environment())  # fmt: skip
    else:
        done = torchrun(WORKER, mode, out, processes=processes)
    assert done.returncode == 0, done.stderr[-3000:]
    return [dict(np.load(out / f"rank{r}-of-{processes}.npz")) for r in range(processes)]


# ---------------------------------------------------------------------- sharding
@pytest.mark.parametrize("n, size", [(8, 2), (7, 2), (10, 3), (1, 2), (2, 4)])
def test_shards_cover_the_order_in_equal_parts(n, size):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    parts = [distributed.shard(order, r, size) for r in range(size)]
    assert {len(p) for p in parts} == {-(-n // size)} == {distributed.shard_size(n, size)}
    joined = torch.cat(parts)
    assert set(joined.tolist()) == set(order.tolist())  # every row, padded by repeats
    if n % size == 0:
        assert sorted(joined.tolist()) == sorted(order.tolist())  # a partition


def test_one_process_is_not_distributed():
    assert distributed.world() == (0, 1)
    assert distributed.is_main() and not distributed.is_distributed()
    assert distributed.agree(True) and not distributed.agree(False)
    t = torch.arange(3.0)
    distributed.average_([t])
    assert t.tolist() == [0.0, 1.0, 2.0]


def test_world_size_without_torchrun_variables_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR.*torchrun"):
        distributed.init_from_environment()


# ---------------------------------------------------------------------- checkpoints
def test_a_process_own_part_of_a_checkpoint_survives_the_file_and_rebuilds_its_state(
    monkeypatch,
):
    """What rank 1 holds apart from rank 0 (here: an optimizer buffer under an int key, one
    element of a tuple, a longer list) is stored as paths and values beside rank 0's state,
    and rank 1 gets its own state back from the file; with another number of processes,
    every process takes rank 0's."""
    rank0 = {"w": torch.arange(3.0), "opt": {0: {"buf": torch.ones(2)}},
             "pair": (1, torch.zeros(2)), "seen": [1, 2], "name": "x"}  # fmt: skip
    rank1 = {"w": torch.arange(3.0), "opt": {0: {"buf": torch.full((2,), 2.0)}},
             "pair": (1, torch.ones(2)), "seen": [1, 2, 3], "name": "x"}  # fmt: skip
    reference, digests = distributed._digests(rank0), distributed._digests(rank1)
    found = distributed._differences(reference, digests, rank1, [])
    parts = [[], [[path, value] for path, value in found]]
    assert [path for path, _ in parts[1]] == [["opt", 0, "buf"], ["pair", 1], ["seen"]]
    assert not list(distributed._differences(reference, distributed._digests(rank0), rank0, []))
    # what goes to the other processes is the digests, a few bytes a part, not the values
    big = {"w": torch.zeros(1_000_000)}
    assert len(pickle.dumps(distributed._digests(big))) < 500 < len(pickle.dumps(big)) // 1000
    config, tensors = pack({**rank0, "ranks": parts})
    written = unpack(json.loads(json.dumps(config)), tensors)

    def same(a, b):
        assert type(a) is type(b)
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)
        elif isinstance(a, (dict, list, tuple)):
            assert list(a) == list(b) if isinstance(a, dict) else len(a) == len(b)
            for x, y in zip(a.values() if isinstance(a, dict) else a,
                            b.values() if isinstance(b, dict) else b, strict=True):  # fmt: skip
                same(x, y)
        else:
            assert a == b

    for (rank, size), expected in [((1, 2), rank1), ((0, 2), rank0), ((1, 3), rank0)]:
        monkeypatch.setattr(distributed, "world", lambda r=rank, n=size: (r, n))
        same(distributed.own_state(written), expected)


# ---------------------------------------------------------------------- the update
@pytest.mark.parametrize("mode", ["rbm", "rbm-centering", "rbm-sparsity"])
def test_two_processes_make_the_update_of_one_on_the_concatenated_batch(tmp_path, mode):
    """Also with centering and a sparsity target, whose running means of the hidden units
    used to follow each process's own batch (the processes still agreed on the parameters,
    but not with one process on the concatenated batch)."""
    (one,) = _worker(mode, tmp_path, 1)
    first, second = _worker(mode, tmp_path, 2)
    for name, value in one.items():
        assert np.array_equal(first[name], second[name]), name
        np.testing.assert_allclose(first[name], value, rtol=0, atol=1e-12, err_msg=name)
    # the three updates moved the weights well beyond that tolerance: a process that stepped
    # on its own half's gradient would be far off
    assert np.abs(one["weight"]).max() > 0.01


def test_processes_with_different_data_are_refused_on_every_process(tmp_path):
    """Rank 1 holding 10 rows where rank 0 holds 8 (another file) used to end in gloo's abort
    of mismatched collectives; each process now stops with the same DataError."""
    errors = [str(r["error"]) for r in _worker("uneven", tmp_path, 2)]
    assert errors[0] == errors[1] != ""
    assert "different numbers of training rows (rank 0: 8, rank 1: 10)" in errors[0]


def test_estimators_end_with_the_same_parameters_on_every_process(tmp_path):
    first, second = _worker("estimators", tmp_path, 2)
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name
    assert any(k.startswith("gen.generative") for k in first)  # up-down ran (untied)
    assert float(first["accuracy"]) > 0.8


# ---------------------------------------------------------------------- the command line
@pytest.fixture
def iris_csv(tmp_path):
    from sklearn.datasets import load_iris

    path = tmp_path / "iris.csv"
    load_iris(as_frame=True).frame.to_csv(path, index=False)
    return path


def test_torchrun_train_writes_one_model_that_loads_and_predicts(tmp_path, iris_csv, capsys):
    done = torchrun("-m", "deepbelief", "train", iris_csv, "-o", "model", "--layers", "16",
                    "--pretrain-epochs", "5", "--epochs", "60", cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("deepbelief: wrote model to model") == 1  # rank 0 alone reports
    folders = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    assert folders == ["model"]
    assert not (tmp_path / "model" / "checkpoint.safetensors").exists()
    out = tmp_path / "predictions.csv"
    assert main(["predict", str(tmp_path / "model"), str(iris_csv), "-o", str(out)]) == 0
    predicted = pd.read_csv(out).iloc[:, -1].to_numpy()
    truth = pd.read_csv(iris_csv)["target"].to_numpy()
    assert np.mean(predicted == truth) > 0.8


def test_a_refusal_on_rank_0_stops_every_process_with_one_line_each(tmp_path, iris_csv):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.txt").write_text("the user's")
    done = torchrun("-m", "deepbelief", "train", iris_csv, "-o", "model", "--layers", "4",
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("deepbelief:")]
    assert any("model" in line and "error" in line for line in lines), done.stderr[-3000:]
    assert "internal error" not in done.stderr
    assert (tmp_path / "model" / "mine.txt").read_text() == "the user's"


def test_only_train_runs_under_torchrun(monkeypatch, capsys, iris_csv):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["predict", "nowhere", str(iris_csv)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "deepbelief: error: only 'deepbelief train' runs under torchrun (several processes); "
        "run 'deepbelief predict' as one process"
    ]


# ---------------------------------------------------------------------- interrupt and resume
@pytest.mark.parametrize(
    "model, update, loop",
    [
        ("classifier", 7, "RBMTrainer"),  # pretraining with persistent chains
        ("classifier", 40, "FinetuneResult"),  # backprop with dropout draws
        ("dbn", 40, "LabelTraining"),
        ("dbn", 52, "UpDown"),
    ],
)
def test_an_interrupt_on_one_process_stops_all_after_the_same_update_and_resumes_exactly(
    tmp_path, model, update, loop
):
    """Rank 1 alone interrupted (its SIGINT flag set) in the middle of an epoch: both processes
    stop after the next update, write one checkpoint together (each process's chains and
    random streams in it), and the resumed fit ends bit for bit where the uninterrupted one
    does, on every process. Before, rank 0 wrote its own state alone: every process resumed
    from rank 0's chains and streams, and ended elsewhere."""
    ranks = _worker(f"interrupted:{model}:{update}", tmp_path, 2)
    for rank, arrays in enumerate(ranks):
        assert str(arrays["stopped.kind"]) == "AgreedInterrupt", rank
        assert int(arrays["stopped.updates"]) == update + 1, rank  # the next update's vote
        assert str(arrays["stopped.loop"]) == loop, rank
        assert int(arrays["stopped.batch"]) > 0, rank  # mid-epoch: the streams matter
        straight = {k[len("straight.") :]: v for k, v in arrays.items() if "straight." in k}
        assert straight
        for name, value in straight.items():
            assert np.array_equal(arrays[f"resumed.{name}"], value), (rank, name)


def test_low_level_checkpoints_of_two_processes_resume_exactly(tmp_path):
    """``RBMTrainer``'s ``Checkpoint`` callback and the ``RBM`` estimator's ``checkpoint``
    are written by the processes together, like ``fit(checkpoint=)``'s: resumed on as many
    processes (``RBMTrainer.from_checkpoint``, ``deepbelief.load(...).fit(resume=True)``),
    PCD training ends bit for bit where the uninterrupted run does. Before, they held rank
    0's state alone, so rank 1 resumed with rank 0's chains and random streams."""
    for rank, arrays in enumerate(_worker("low_level_interrupted", tmp_path, 2)):
        for kind in ("trainer", "estimator"):
            assert str(arrays[f"{kind}.stopped.kind"]) == "AgreedInterrupt", (rank, kind)
            assert int(arrays[f"{kind}.stopped.updates"]) == 7, rank  # mid-epoch 1 (of 4)
            prefix = f"{kind}.straight."
            straight = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            assert straight
            for name, value in straight.items():
                assert np.array_equal(arrays[f"{kind}.resumed.{name}"], value), (rank, name)


def test_a_checkpoint_rank_0_cannot_write_raises_on_every_process(tmp_path):
    """A collective write that fails on rank 0 says so on the other processes too, instead
    of leaving them to fail (or wait) in the next collective."""
    first, second = (str(r["error"]) for r in _worker("failed_write", tmp_path, 2))
    assert first.startswith("NotADirectoryError") and "a-file" in first, first
    assert second.startswith("ModelFileError") and "rank 0 of this distributed run" in second


def test_a_signal_during_the_epochs_vote_stops_every_process_after_the_next_update(tmp_path):
    """The loop used to overwrite the flag with the vote's answer, so a SIGINT that came
    during the vote at an epoch's end was lost and training ran to its end."""
    for arrays in _worker("signal_during_the_epochs_vote", tmp_path, 2):
        assert str(arrays["kind"]) == "AgreedInterrupt"
        assert (int(arrays["epoch"]), int(arrays["batch"])) == (1, 1)


@pytest.mark.parametrize("processes", [1, 3])
def test_a_checkpoint_of_two_processes_resumes_with_another_number(tmp_path, processes):
    """Stopped at batch 5 of 6 of a pretraining epoch by two processes (20 rows each per
    batch: 200 rows of the epoch done): one or three processes continue at the last batch
    of theirs within those rows. A resume with three used to be refused ("cannot resume at
    batch 6 of an epoch over 240 rows ..."). Not bit for bit (other shards), but a resume:
    fewer updates than a fresh start."""
    (tmp_path / "fresh").mkdir()
    fresh = _worker("resumed", tmp_path / "fresh", processes)[0]  # no checkpoint there
    interrupted = _worker("interrupted:classifier:4:stop", tmp_path, 2)[0]
    assert (int(interrupted["stopped.epoch"]), int(interrupted["stopped.batch"])) == (0, 5)
    arrays = _worker("resumed", tmp_path, processes)[0]
    assert 0 < int(arrays["updates"]) < int(fresh["updates"])
    for name, value in arrays.items():
        assert np.isfinite(value).all(), name


def test_a_checkpoint_given_to_one_process_only_is_refused_on_every_process(tmp_path):
    """Checkpoints are written by the processes together: one process without one would
    leave the others waiting in a collective it never joins (or abort on a mismatched one)."""
    errors = [str(r["error"]) for r in _worker("uneven_checkpoints", tmp_path, 2)]
    assert errors[0] == errors[1] != ""
    assert (
        "different checkpoints (rank 0: checkpoint_every=1, rank 1: no checkpoint)" in (errors[0])
    )
    assert not (tmp_path / "run.ckpt").exists()


def test_torchrun_train_interrupted_by_ctrl_c_resumes_to_the_same_model(tmp_path, iris_csv):
    """SIGINT to torchrun (which passes it to every process) in the middle of fine-tuning:
    one 'interrupted' line, a checkpoint, and ``--resume`` ends with the model file of an
    uninterrupted run, byte for byte."""
    options = ["--layers", "16", "--sampler", "pcd", "--pretrain-epochs", "5",
               "--epochs", "60", "--checkpoint-every", "1", "--seed", "3"]  # fmt: skip
    done = torchrun("-m", "deepbelief", "train", iris_csv, "-o", "straight", *options,
                    cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node=2", "-m", "deepbelief", "train", str(iris_csv), "-o", "run",
               *options]  # fmt: skip
    log = tmp_path / "run.log"
    with open(log, "w") as err:
        process = subprocess.Popen(command, cwd=tmp_path, env=_environment(), stderr=err,
                                   stdout=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + TIMEOUT
        while "fine-tune: epoch 20/" not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) != 0
    lines = [line for line in log.read_text().splitlines() if line.startswith("deepbelief:")]
    resume = "`deepbelief train --resume run` continues from its last checkpoint"
    assert lines == [f"deepbelief: interrupted; {resume}"], log.read_text()[-3000:]
    assert (tmp_path / "run" / "checkpoint.safetensors").exists()
    done = torchrun("-m", "deepbelief", "train", "--resume", "run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    from safetensors.torch import load_file

    straight = load_file(tmp_path / "straight" / "model.safetensors")
    resumed = load_file(tmp_path / "run" / "model.safetensors")
    assert straight.keys() == resumed.keys()
    for name, value in straight.items():
        assert torch.equal(resumed[name], value), name


def test_a_run_that_cannot_start_says_so_once_not_once_per_process(tmp_path):
    done = torchrun("-m", "deepbelief", "train", "--resume", "nowhere", cwd=tmp_path)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("deepbelief:")]
    assert lines == ["deepbelief: error: nowhere: no such model directory to resume"], lines


@pytest.mark.parametrize(
    "arguments, line",
    [
        (["--bogus"], "deepbelief: unrecognized arguments: --bogus"),
        (["-o", "taken"], "deepbelief: error: taken: is not empty (holds notes.txt); "),
    ],
)
def test_a_wrong_option_or_a_taken_folder_is_said_once(tmp_path, iris_csv, arguments, line):
    """Each process used to print the parser's error, and a refused folder gave rank 0's line
    and a second one from rank 1 ("another process of the run failed")."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("the user's")
    done = torchrun("-m", "deepbelief", "train", iris_csv, *arguments, cwd=tmp_path)
    assert done.returncode != 0
    lines = [x for x in done.stderr.splitlines() if x.startswith("deepbelief:")]
    assert len(lines) == 1 and lines[0].startswith(line), lines
    assert (tmp_path / "taken" / "notes.txt").read_text() == "the user's"


@pytest.mark.parametrize("rank", [0, 1])
def test_a_check_that_fails_on_another_process_stops_this_one(monkeypatch, rank):
    """Rank 0 reports the first failing process's error and fails the run; the others stop
    without a word, and with status 0: an exit 2 there could have torchrun stop rank 0 before
    it printed why (as a parse error's did)."""
    from deepbelief import commands
    from deepbelief.errors import UsageError

    monkeypatch.setattr(distributed, "world", lambda: (rank, 2))
    monkeypatch.setattr(distributed, "gathered_objects", lambda value: [value, "DATA: gone"])
    if rank == 0:
        with pytest.raises(UsageError, match="^process 1 of the run: DATA: gone$"):
            commands._checked_together(lambda: "fine here")
    else:
        with pytest.raises(SystemExit) as stopped:
            commands._checked_together(lambda: "fine here")
        assert stopped.value.code == 0
