"""What the command writes, and when it refuses (issue 13, points 4 and 5): outputs onto
devices, FIFOs, symbolic links and folders are refused before any work; files follow the umask;
model folders are not overwritten without ``--overwrite``, are locked while training, are left
as they were by a failed run; the card pairs with its own tensors; every option, the device and
the memory a request needs are checked before data is read. Each refusal: exit code 2, one line
on stderr naming the path/option/value, no traceback, nothing of the user's changed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import command

from deepbelief import commands, resources
from deepbelief.cli import main
from deepbelief.errors import DivergenceError
from deepbelief.io import OutputPathError, atomic_write_bytes, read_file, write_file

TINY = ["--layers", "4", "--pretrain-epochs", "1", "--epochs", "1", "--quiet"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, *words):
    """The refusal contract: exit 2, one line, no traceback, naming ``words``."""
    assert code == 2, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err
    for word in words:
        assert str(word) in lines[0], (word, lines[0])
    return lines[0]


def snapshot(path: Path):
    """What the user would notice: kind, inode, device number, mtime, bytes (or link target);
    for a folder, that of every entry (its own mtime moves with the lock file: not compared)."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        content = os.readlink(path)
    elif stat.S_ISREG(info.st_mode):
        content = path.read_bytes()
    elif stat.S_ISDIR(info.st_mode):
        content = sorted((p.name, snapshot(p)) for p in path.iterdir())
    else:
        content = None
    mtime = None if stat.S_ISDIR(info.st_mode) else info.st_mtime_ns
    return (info.st_mode, info.st_ino, info.st_rdev, mtime, content)


def char_device(folder: Path) -> Path:
    """A character device like /dev/null (1, 3), made in ``folder`` (never the real one)."""
    path = folder / "null"
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs root")
    return path


def make_node(kind: str, folder: Path) -> Path:
    if kind == "char device":
        return char_device(folder)
    path = folder / kind.replace(" ", "_")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (folder / "target.csv").write_text("precious\n")
        path.symlink_to(folder / "target.csv")
    elif kind == "dangling symlink":
        path.symlink_to(folder / "nowhere.csv")
    elif kind == "folder":
        path.mkdir()
        (path / "keep.txt").write_text("mine")
    return path


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """Tiny data (40 rows x 4 columns and a label), a classifier and an unsupervised model."""
    folder = tmp_path_factory.mktemp("safety")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    frame = pd.DataFrame(X, columns=list("abcd"))
    frame["label"] = np.where(X[:, 0] > 0, "up", "down")
    frame.to_csv(folder / "data.csv", index=False)
    np.save(folder / "x.npy", (rng.random((40, 4)) < 0.5).astype(float))
    assert main(["train", str(folder / "data.csv"), "-o", str(folder / "model"), *TINY]) == 0
    unsupervised = ["--layers", "4", "--pretrain-epochs", "1", "--quiet"]  # no target: no --epochs
    assert main(["train", str(folder / "x.npy"), "-o", str(folder / "umodel"), *unsupervised]) == 0
    return folder


def no_work(monkeypatch):
    """Make loading a model or data, or fitting, fail the test: refusals come before work."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work was done before the refusal")

    monkeypatch.setattr(commands, "load_model", forbidden)
    monkeypatch.setattr(commands, "load_dataset", forbidden)


# ------------------------------------------------------------------ 1. outputs
KINDS = ["char device", "fifo", "symlink", "dangling symlink", "folder"]


@pytest.mark.parametrize("kind", KINDS)
def test_predict_output_onto_a_non_regular_file_is_refused_untouched(
    ws, tmp_path, capsys, monkeypatch, kind
):
    node = make_node(kind, tmp_path)
    before = snapshot(node)
    target = snapshot(tmp_path / "target.csv") if kind == "symlink" else None
    no_work(monkeypatch)
    code, out, err = run(capsys, "predict", ws / "model", ws / "data.csv", "-o", node)
    one_line(code, err, node)
    assert out == ""
    assert snapshot(node) == before
    if target is not None:
        assert snapshot(tmp_path / "target.csv") == target
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize(
    ("command", "output"),
    [
        (["predict", "{model}", "{data}", "-o", "{data}"], "{data}"),
        (["predict", "{model}", "{data}", "-o", "{model}/deepbelief.json"], "{model}"),
        (["predict", "{model}", "{data}", "-o", "{model}/model.safetensors"], "{model}"),
        (["transform", "{model}", "{data}", "-o", "{model}/features.csv"], "{model}"),
        (["score", "{umodel}", "{x}", "-o", "{umodel}/scores.csv"], "{umodel}"),
        (["denoise", "{umodel}", "{x}", "-o", "{x}"], "{x}"),
        (["impute", "{data}", "-o", "{data}"], "{data}"),
        (["sample", "{umodel}", "-n", "2", "-o", "{umodel}/run.json"], "{umodel}"),
        (["report", "{model}", "-o", "{model}"], "{model}"),
    ],
    ids=[
        "predict data",
        "predict card",
        "predict tensors",
        "transform",
        "score",
        "denoise",
        "impute",
        "sample",
        "report",
    ],
)
def test_no_command_writes_over_its_own_input(ws, capsys, monkeypatch, command, output):
    """An output that is the command's input file, or a file in its model folder, is refused
    before any work (predict -o data.csv used to replace the data with its predictions)."""
    names = {"model": ws / "model", "umodel": ws / "umodel", "data": ws / "data.csv",
             "x": ws / "x.npy"}  # fmt: skip
    before = snapshot(ws)
    no_work(monkeypatch)
    code, _, err = run(capsys, *(part.format(**names) for part in command))
    one_line(code, err, "the input", output.format(**names), "will not write over")
    assert snapshot(ws) == before


def test_a_report_is_refused_standard_output_and_another_models_folder(ws, capsys, monkeypatch):
    """``report -o -`` made a folder named "-"; ``-o OTHER_MODEL`` wrote the report beside
    another model, where a later ``train --overwrite`` left it describing the old one."""
    before = snapshot(ws)
    no_work(monkeypatch)
    code, _, err = run(capsys, "report", ws / "model", "-o", "-")
    one_line(code, err, "-o -", "a report is a folder")
    assert not Path("-").exists()
    code, _, err = run(capsys, "report", ws / "model", "-o", ws / "umodel")
    one_line(code, err, ws / "umodel", "holds a model", "a folder of its own")
    assert snapshot(ws) == before


def test_predict_refuses_an_output_named_for_another_format_and_option_clashes_first(
    ws, tmp_path, capsys, monkeypatch
):
    no_work(monkeypatch)
    for name in ("p.npy", "p.csv.gz", "p.json"):
        code, _, err = run(capsys, "predict", ws / "model", ws / "data.csv", "-o", tmp_path / name)
        one_line(code, err, name, "as CSV")
    code, _, err = run(capsys, "predict", ws / "model", ws / "data.csv", "--json", "-o",
                       tmp_path / "p.csv")  # fmt: skip
    one_line(code, err, "p.csv", "as JSON")
    monkeypatch.undo()
    monkeypatch.setattr(commands, "load_dataset", lambda *a, **k: pytest.fail("data read"))
    code, _, err = run(capsys, "predict", ws / "umodel", ws / "x.npy")
    one_line(code, err, "an unsupervised model has nothing to predict")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command",
    [
        lambda ws, o: ["transform", ws / "model", ws / "data.csv", "-o", o],
        lambda ws, o: ["sample", ws / "umodel", "-n", "2", "-o", o],
        lambda ws, o: ["report", ws / "model", "-o", o],
        lambda ws, o: ["train", ws / "data.csv", "-o", o, *TINY],
        lambda ws, o: ["train", ws / "data.csv", "-o", o, "--overwrite", *TINY],
        lambda ws, o: ["demo", "-o", o, "--epochs", "1", "--quiet"],
    ],
    ids=["transform", "sample", "report", "train", "train --overwrite", "demo"],
)
@pytest.mark.parametrize("kind", ["char device", "fifo", "symlink"])
def test_every_command_refuses_a_device_fifo_or_symlink_as_output(
    ws, tmp_path, capsys, monkeypatch, command, kind
):
    node = make_node(kind, tmp_path)
    before = snapshot(tmp_path)
    no_work(monkeypatch)
    code, _, err = run(capsys, *command(ws, node))
    one_line(code, err, node)
    assert snapshot(tmp_path) == before


def test_files_in_an_output_folder_are_checked_too(ws, tmp_path, capsys, monkeypatch):
    report = tmp_path / "report"
    report.mkdir()
    device = char_device(report)
    os.rename(device, report / "report.html")
    model = tmp_path / "m"
    model.mkdir()
    os.mkfifo(model / "run.json")
    before = snapshot(tmp_path)
    no_work(monkeypatch)
    code, _, err = run(capsys, "report", ws / "model", "-o", report)
    one_line(code, err, report / "report.html", "character device")
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", model, "--overwrite", *TINY)
    one_line(code, err, model / "run.json", "FIFO")
    assert snapshot(tmp_path) == before


def test_demo_refuses_a_folder_with_other_files_before_any_work(tmp_path, capsys, monkeypatch):
    import sklearn.datasets

    monkeypatch.setattr(sklearn.datasets, "load_digits", lambda **k: pytest.fail("worked"))
    (tmp_path / "thesis.tex").write_text("mine")
    before = snapshot(tmp_path)
    code, _, err = run(capsys, "demo", "-o", tmp_path, "--epochs", "1", "--quiet")
    one_line(code, err, tmp_path, "--overwrite")
    assert snapshot(tmp_path) == before


def test_atomic_write_refuses_a_device_and_names_the_users_file(tmp_path):
    device = char_device(tmp_path)
    before = snapshot(device)
    with pytest.raises(OutputPathError, match="character device"):
        atomic_write_bytes(device, b"x")
    assert snapshot(device) == before
    with pytest.raises(OSError) as caught:
        atomic_write_bytes(tmp_path / "absent" / "out.csv", b"x")
    assert caught.value.filename == str(tmp_path / "absent" / "out.csv")
    assert ".tmp" not in str(caught.value)
    assert [p.name for p in tmp_path.iterdir()] == ["null"]


def test_error_messages_name_the_users_file_not_a_temporary_one(ws, tmp_path, capsys):
    out = tmp_path / "absent" / "out.csv"
    code, _, err = run(capsys, "predict", ws / "model", ws / "data.csv", "-o", out)
    line = one_line(code, err, "out.csv")
    assert ".tmp" not in line


@pytest.mark.parametrize(
    "command",
    [
        lambda ws: ["predict", ws / "model", ws / "data.csv", "-o", "-"],
        lambda ws: ["transform", ws / "model", ws / "data.csv", "-o", "-"],
        lambda ws: ["sample", ws / "umodel", "-n", "3", "--gibbs-steps", "2", "-o", "-"],
    ],
    ids=["predict", "transform", "sample"],
)
def test_dash_writes_to_standard_output(ws, tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *command(ws))
    assert code == 0, err
    assert list(tmp_path.iterdir()) == []  # no file called "-"
    table = pd.read_csv(__import__("io").StringIO(out))
    assert len(table) in (40, 3) and table.notna().all().all()


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600)])
def test_new_files_follow_the_umask(ws, tmp_path, capsys, umask, mode):
    old = os.umask(umask)
    try:
        assert (
            run(capsys, "predict", ws / "model", ws / "data.csv", "-o", tmp_path / "p.csv")[0] == 0
        )
        assert run(capsys, "train", ws / "data.csv", "-o", tmp_path / "m", *TINY)[0] == 0
    finally:
        os.umask(old)
    written = [tmp_path / "p.csv", *sorted((tmp_path / "m").iterdir())]
    assert {p.name for p in written} == {
        "p.csv",
        "model.safetensors",
        "deepbelief.json",
        "run.json",
    }
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


def test_a_replaced_file_keeps_its_permissions(ws, tmp_path, capsys):
    out = tmp_path / "p.csv"
    out.write_text("old\n")
    out.chmod(0o640)
    assert run(capsys, "predict", ws / "model", ws / "data.csv", "-o", out)[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o640 and out.read_text().startswith("label")


# ------------------------------------------------------------------ 3. model folders
def test_a_folder_with_another_model_is_refused_without_overwrite(ws, tmp_path, capsys):
    model = shutil.copytree(ws / "model", tmp_path / "model")
    (model / "notes.txt").write_text("mine")
    before, mtime = snapshot(model), model.stat().st_mtime_ns
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", model, *TINY)
    one_line(code, err, model, "--overwrite")
    assert snapshot(model) == before and model.stat().st_mtime_ns == mtime
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", model, "--overwrite", *TINY)
    assert code == 0, err
    assert (model / "notes.txt").read_text() == "mine"  # never deletes the user's files
    assert snapshot(model / "model.safetensors") != before[4][1][1]
    assert sorted(p.name for p in model.iterdir()) == [
        "deepbelief.json", "model.safetensors", "notes.txt", "run.json",
    ]  # fmt: skip


def test_a_folder_with_other_files_is_refused_without_overwrite(ws, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8 not really")
    before = snapshot(folder)
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", folder, *TINY)
    one_line(code, err, folder, "holiday.jpg", "not empty")
    assert snapshot(folder) == before


def test_a_failed_run_leaves_the_old_model_byte_identical(ws, tmp_path, capsys, monkeypatch):
    model = shutil.copytree(ws / "model", tmp_path / "model")
    before = snapshot(model)
    from deepbelief.dbn_estimators import DBNClassifier

    def diverge(self, X, y, *, checkpoint=None, checkpoint_every=1):
        Path(checkpoint).write_bytes(b"half-way state")  # as a real fit would have by now
        raise DivergenceError("training diverged (NaN loss) in epoch 1")

    monkeypatch.setattr(DBNClassifier, "fit", diverge)
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", model, "--overwrite", *TINY)
    one_line(code, err, "diverged")
    assert snapshot(model) == before  # run.json included: same inode, mtime and bytes


def test_a_failed_run_leaves_no_new_folder(ws, tmp_path, capsys, monkeypatch):
    from deepbelief.dbn_estimators import DBNClassifier

    def diverge(self, X, y, *, checkpoint=None, checkpoint_every=1):
        Path(checkpoint).write_bytes(b"half-way state")
        raise DivergenceError("training diverged (NaN loss) in epoch 1")

    monkeypatch.setattr(DBNClassifier, "fit", diverge)
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", tmp_path / "a" / "b" / "m", *TINY)
    one_line(code, err, "diverged")
    assert list(tmp_path.iterdir()) == []
    ragged = tmp_path / "r.csv"
    ragged.write_text("a,b,c\n1,2,3\n4,5,6,7\n")
    code, _, err = run(capsys, "train", ragged, "-o", tmp_path / "m", *TINY)
    one_line(code, err, "r.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["r.csv"]


def test_a_resume_whose_data_changed_is_refused_in_one_line_with_the_commands_advice(
    ws, tmp_path, capsys, monkeypatch
):
    """It printed "resuming the interrupted run" before the refusal (two lines), and the
    refusal advised the Python API's "delete it (or pass another path)"."""
    from deepbelief import loop as loop_module

    data = tmp_path / "data.csv"
    data.write_bytes((ws / "data.csv").read_bytes())
    call = loop_module.call

    def interrupt_after_two_updates(callbacks, hook, *args):
        if hook == "on_batch_end" and args[0].step == 2:
            args[0].interrupted = True  # as a Ctrl-C would
        return call(callbacks, hook, *args)

    monkeypatch.setattr(loop_module, "call", interrupt_after_two_updates)
    model = tmp_path / "m"
    code, _, err = run(capsys, "train", data, "-o", model, *TINY[:-1], "--pretrain-epochs", "3")
    assert code == 130 and (model / "checkpoint.safetensors").exists()
    resume = f"`deepbelief train --resume {model}` continues"  # (it said "interrupted" alone)
    assert err.splitlines()[-1] == f"deepbelief: interrupted; {resume} from its last checkpoint"
    for argv in (["info", model], ["evaluate", model, data]):  # "not a model folder"
        code, _, err = run(capsys, *argv)
        one_line(code, err, "holds a training run that has not finished", resume)
    monkeypatch.setattr(loop_module, "call", call)
    copy = tmp_path / "copy"  # resumed: the card's seconds count the interrupted part too
    shutil.copytree(model, copy)
    kind, tree = read_file(copy / "checkpoint.safetensors")
    tree["seconds"] = 1000.0  # (it counted the resumed part alone)
    write_file(copy / "checkpoint.safetensors", kind, tree)
    assert run(capsys, "train", "--resume", copy, "--quiet")[0] == 0
    assert json.loads((copy / "deepbelief.json").read_text())["train_seconds"] >= 1000
    data.write_text(data.read_text() + "0.1,0.2,0.3,0.4,up\n")  # one row more
    code, _, err = run(capsys, "train", "--resume", model)
    one_line(code, err, "refusing to resume", f"train with -o {model} --overwrite")
    code, _, err = run(capsys, "train", data, "-o", model, *TINY, "--overwrite")
    assert code == 0, err


def test_an_interrupted_run_can_be_resumed_or_discarded(ws, tmp_path, capsys, monkeypatch):
    from deepbelief.dbn_estimators import DBNClassifier

    real_fit = DBNClassifier.fit

    def interrupted(self, X, y, *, checkpoint=None, checkpoint_every=1):
        raise KeyboardInterrupt

    model = tmp_path / "m"
    monkeypatch.setattr(DBNClassifier, "fit", interrupted)
    code, _, _ = run(capsys, "train", ws / "data.csv", "-o", model, *TINY)
    assert code == 130
    assert (model / "run.json").exists()  # kept for --resume
    assert not (model / ".deepbelief.lock").exists()
    (model / "checkpoint.safetensors").write_bytes(b"state")
    before = snapshot(model)
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", model, *TINY)
    one_line(code, err, "--resume", "--overwrite", "checkpoint.safetensors")
    assert snapshot(model) == before
    monkeypatch.setattr(DBNClassifier, "fit", real_fit)
    (model / "checkpoint.safetensors").unlink()
    (model / ".checkpoint.safetensors.k2j3h4g5.tmp").write_bytes(b"half")  # a kill -9's
    code, _, err = run(capsys, "train", "--resume", model, "--quiet")
    assert code == 0, err
    assert sorted(p.name for p in model.iterdir()) == [
        "deepbelief.json", "model.safetensors", "run.json",
    ]  # fmt: skip
    # the run finished: a second --resume would retrain and replace the model, so it is refused,
    # also when run.json was reformatted or the card damaged
    settings = json.loads((model / "run.json").read_text())
    assert settings["finished"] is True
    (model / "run.json").write_text(json.dumps(settings, indent=4))
    card = model / "deepbelief.json"
    card.write_bytes(card.read_bytes()[:-50])
    before = snapshot(model)
    code, _, err = run(capsys, "train", "--resume", model, "--quiet")
    one_line(code, err, "finished", "nothing to resume", "--overwrite")
    assert snapshot(model) == before


def test_a_ctrl_c_before_training_began_says_there_is_nothing_to_resume(
    ws, tmp_path, capsys, monkeypatch
):
    """Interrupted while reading the data: the folder it would have made is not left behind,
    and the line says so instead of suggesting a --resume that would be refused."""
    from deepbelief import commands

    def reading(settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "_training_data", reading)
    model = tmp_path / "m"
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", model, *TINY)
    assert code == 130
    assert err == "deepbelief: interrupted before training began; nothing to resume\n"
    assert not model.exists()


# ------------------------------------------------------------------ 4. the lock
def test_a_second_training_into_a_locked_folder_fails_at_once(ws, tmp_path, capsys):
    model = tmp_path / "m"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    first = subprocess.Popen(
        [*command(), "train", str(ws / "data.csv"), "-o", str(model), "--layers", "4",
         "--pretrain-epochs", "1", "--epochs", "1000000", "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (model / "run.json").exists() and first.poll() is None:
            assert time.monotonic() < deadline, "the first training never started"
            time.sleep(0.05)
        assert first.poll() is None, first.stderr.read()
        for extra in (["--overwrite", ws / "data.csv", "-o", model, *TINY], ["--resume", model]):
            start = time.monotonic()
            code, _, err = run(capsys, "train", *extra)
            assert time.monotonic() - start < 10
            one_line(code, err, model, "another deepbelief training")
        assert first.poll() is None  # the first one is undisturbed
    finally:
        first.kill()
        first.wait()
    assert (model / ".deepbelief.lock").exists()  # stale: its holder was killed
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", model, "--overwrite", *TINY)
    assert code == 0, err  # flock died with the process: a stale file does not block
    assert not (model / ".deepbelief.lock").exists()  # released on exit


# ------------------------------------------------------------------ 5. the card's checksum
def test_a_card_beside_another_models_tensors_is_refused(ws, tmp_path, capsys):
    one = shutil.copytree(ws / "model", tmp_path / "one")
    code, _, err = run(
        capsys, "train", ws / "data.csv", "-o", tmp_path / "two", *TINY, "--seed", "5"
    )
    assert code == 0, err
    shutil.copy(tmp_path / "two" / "model.safetensors", one / "model.safetensors")
    for argv in (["info", one], ["predict", one, ws / "data.csv"]):
        code, out, err = run(capsys, *argv)
        one_line(code, err, one / "deepbelief.json", one / "model.safetensors")
        assert out == ""


def test_a_card_written_before_the_checksum_field_still_loads(ws, tmp_path, capsys):
    from deepbelief.model_dir import _card_checksum

    model = shutil.copytree(ws / "model", tmp_path / "old")
    card = json.loads((model / "deepbelief.json").read_text())
    assert len(card.pop("model_sha256")) == 64
    card["sha256"] = _card_checksum(card)
    (model / "deepbelief.json").write_text(json.dumps(card))
    code, _, err = run(capsys, "info", model)
    assert code == 0, err


# ------------------------------------------------------------------ 6. validation before work
@pytest.mark.parametrize(
    "options, words",
    [
        (["--momentum", "5"], ["--momentum", "5"]),
        (["--device", "foo"], ["--device", "foo"]),
        (["--device", "cuda:99"], ["--device", "cuda:99"]),
        (["--layers", "1000000", "1000000"], ["--layers 1000000 1000000", "GB"]),
        (["--early-stopping", "--average-epochs", "2"], ["--average-epochs"]),
        (["--model", "generative", "--up-down-epochs", "2"], ["--up-down-epochs", "--layers"]),
        (["--label-training", "hybrid"], ["--label-training", "--model generative"]),
    ],
    ids=["momentum", "device foo", "cuda:99", "memory", "averaging", "up-down", "labels"],
)
def test_bad_options_are_refused_before_data_is_read(
    ws, tmp_path, capsys, monkeypatch, options, words
):
    no_work(monkeypatch)
    model = tmp_path / "m"
    argv = ["train", ws / "data.csv", "-o", model, "--layers", "4", *options]
    code, _, err = run(capsys, *argv)
    one_line(code, err, *words)
    assert list(tmp_path.iterdir()) == []


def test_cuda_without_cuda_is_refused(ws, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    no_work(monkeypatch)
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", tmp_path / "m", "--device", "cuda")
    one_line(code, err, "--device cuda", "CUDA")
    assert list(tmp_path.iterdir()) == []


def test_estimator_parameter_checks_run_first_in_the_commands_words(
    ws, tmp_path, capsys, monkeypatch
):
    from deepbelief.dbn_estimators import DBNClassifier

    def check(self):
        if self.learning_rate != "auto" and self.learning_rate > 1:
            raise ValueError(f"learning_rate must be <= 1, got {self.learning_rate}")

    monkeypatch.setattr(DBNClassifier, "_check_params", check, raising=False)
    no_work(monkeypatch)
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", tmp_path / "m", "--lr", "7")
    line = one_line(code, err, "--lr must be <= 1, got 7")
    assert "learning_rate" not in line
    assert list(tmp_path.iterdir()) == []


def test_option_names_replace_parameter_names():
    assert commands.cli_message("momentum must lie in [0, 1), got 5") == (
        "--momentum must lie in [0, 1), got 5"
    )
    assert commands.cli_message("pretrain_learning_rate must be > 0") == "--pretrain-lr must be > 0"
    assert commands.cli_message("bad 'max_norm': -1") == "bad --max-norm: -1"
    assert commands.cli_message("hidden units are odd") == "--hidden units are odd"
    assert commands.cli_message("the dropout rate") == "the dropout rate"


def test_sampling_past_the_machines_memory_is_refused(ws, tmp_path, capsys, monkeypatch):
    from deepbelief.dbn_estimators import DBN

    monkeypatch.setattr(resources, "available_memory", lambda: 2 * 10**9)
    monkeypatch.setattr(DBN, "sample", lambda *a, **k: pytest.fail("sampled anyway"))
    out = tmp_path / "s.npy"
    code, _, err = run(capsys, "sample", ws / "umodel", "-n", "100000000", "-o", out)
    one_line(code, err, "-n 100000000", "GB", "can have 2.0 GB more")
    assert list(tmp_path.iterdir()) == []


def test_the_memory_check_counts_the_control_group_and_the_address_space_limit(
    tmp_path, monkeypatch
):
    """Under a container's memory limit or ``ulimit -v`` the machine's free memory is not what
    a process can get (training past them ended in an allocation failure, not a refusal)."""
    import resource

    limit, usage = tmp_path / "memory.max", tmp_path / "memory.current"
    limit.write_text("3000000000\n")
    usage.write_text("1000000000\n")
    monkeypatch.setattr(resources, "_CGROUPS", ((str(limit), str(usage)),))
    assert resources._cgroup_room() == 2 * 10**9
    limit.write_text("max\n")
    assert resources._cgroup_room() == resources.UNKNOWN
    mapped = resources._address_space_room  # the limit, less what this process maps
    monkeypatch.setattr(resource, "getrlimit", lambda which: (resources.UNKNOWN, -1))
    room = mapped()
    assert 0 < room < resources.UNKNOWN
    monkeypatch.setattr(resources, "_free_memory", lambda: 10**12)
    limit.write_text("3000000000\n")
    assert resources.available_memory() == 2 * 10**9


@pytest.mark.parametrize("where", ["data", "model", "resume"])
def test_a_symlink_loop_is_one_line(ws, tmp_path, capsys, where):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    argv = {
        "data": ["train", loop, "-o", tmp_path / "m"],
        "model": ["predict", loop, ws / "data.csv"],
        "resume": ["train", "--resume", loop],
    }[where]
    code, _, err = run(capsys, *argv)
    one_line(code, err, loop)
    assert [p.name for p in tmp_path.iterdir()] == ["loop"]


# ------------------------------------------------------------------ 7. logging
def test_main_leaves_the_library_logger_as_it_was(ws, capsys):
    logger = logging.getLogger("deepbelief")
    handler = logging.NullHandler()
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = True
    try:
        assert main(["info", str(ws / "model"), "--verbose"]) == 0
        assert main(["info", str(ws / "nowhere")]) == 2
        assert logger.handlers == [handler]
        assert logger.level == logging.DEBUG and logger.propagate is True
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])
    capsys.readouterr()


CONTRADICTIONS = {  # train's arguments -> what the one line names
    "target and no target": (
        ["{data}", "-o", "{out}", "--target", "label", "--no-target"],
        ["--target", "--no-target"],
    ),
    "task without target": (
        ["{data}", "-o", "{out}", "--no-target", "--task", "classification"],
        ["--task", "--no-target"],
    ),
    "resume with options": (
        ["--resume", "{model}", "--layers", "8", "--epochs", "2"],
        ["--resume", "--layers", "--epochs"],
    ),
    "resume with data": (["{data}", "-o", "{out}", "--resume", "{model}"], ["DATA", "-o"]),
}


@pytest.mark.parametrize(("argv", "words"), CONTRADICTIONS.values(), ids=CONTRADICTIONS)
def test_contradicting_train_options_are_refused_before_any_work(
    ws, tmp_path, capsys, monkeypatch, argv, words
):
    """They used to be accepted silently: --no-target won over --target (training on the
    target as a feature), --resume ignored the data, the folder and the options given."""
    names = {"data": ws / "data.csv", "out": tmp_path / "m", "model": ws / "model"}
    before = snapshot(ws)
    no_work(monkeypatch)
    code, _, err = run(capsys, "train", *(part.format(**names) for part in argv))
    one_line(code, err, *words)
    assert snapshot(ws) == before and list(tmp_path.iterdir()) == []


def test_report_replaces_an_earlier_report_but_not_the_users_files(ws, tmp_path, capsys):
    out = tmp_path / "reports"
    out.mkdir()
    (out / "report.html").write_text("<html>my own notes</html>")
    before = snapshot(out)
    code, _, err = run(capsys, "report", ws / "model", "-o", out)
    one_line(code, err, "report.html", "not an earlier deepbelief report", "--overwrite")
    assert snapshot(out) == before
    code, _, err = run(capsys, "report", ws / "model", "-o", out, "--overwrite")
    assert code == 0, err
    (out / "filters.png").write_bytes(b"an image model's filters")  # of the earlier report
    code, _, err = run(capsys, "report", ws / "model", "-o", out)  # its own: replaced
    assert code == 0, err
    assert "Written by deepbelief" in (out / "report.html").read_text()
    assert not (out / "filters.png").exists()  # a table model has none: not left to mislead


def test_a_validation_split_that_leaves_no_training_row_names_the_option(ws, tmp_path, capsys):
    code, _, err = run(capsys, "train", ws / "data.csv", "-o", tmp_path / "m", *TINY,
                       "--validation-split", "0.999")  # fmt: skip
    one_line(code, err, "--validation-split 0.999 of 40 rows holds out 40")
    assert list(tmp_path.iterdir()) == []


def test_an_image_size_past_memory_is_refused_before_any_image_is_read(
    tmp_path, capsys, monkeypatch
):
    from PIL import Image

    from deepbelief import data

    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(
                tmp_path / "images" / label / f"{i}.png"
            )
    monkeypatch.setattr(resources, "available_memory", lambda: 10**8)
    monkeypatch.setattr(data, "read_image_folder", lambda *a, **k: pytest.fail("read"))
    code, _, err = run(capsys, "train", tmp_path / "images", "-o", tmp_path / "m",
                       "--image-size", "3000x3000", *TINY)  # fmt: skip
    one_line(code, err, "--image-size 3000x3000 on 6 images", "GB")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["predict", "MODEL", "DATA"],
        ["transform", "MODEL", "DATA"],
        ["score", "MODEL", "DATA"],
        ["denoise", "MODEL", "DATA"],
        ["sample", "MODEL"],
        ["impute", "DATA"],
    ],
)
def test_an_output_file_named_with_a_trailing_slash_is_refused(argv, tmp_path, capsys):
    """``-o results/`` for a folder that does not exist wrote a file named ``results``."""
    (tmp_path / "DATA").write_text("a,b\n1,2\n")
    given = [str(tmp_path / a) if a in ("MODEL", "DATA") else a for a in argv]
    code, _, err = run(capsys, *given, "-o", f"{tmp_path / 'results'}/")
    one_line(code, err, "-o/--output", "results/ names a folder", "results/out.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DATA"]
