"""What the ``deepbelief`` command says: one line per epoch of every phase on a standard error
that is not a terminal (a bar on a terminal, nothing with ``--quiet``), one summary line on
standard error when a subcommand succeeds (standard output keeps the data), ``predict
--json``, the defaults in ``--help``, and a ``--help`` that loads no torch."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from deepbelief import progress
from deepbelief.cli import build_parser, main
from deepbelief.loop import ProgressBar

SECONDS = r"\(\d+\.\d\d s\)"
NUMBER = r"-?[\d.]+(?:e[-+]?\d+)?"
TRAIN = ["--layers", "4", "3", "--pretrain-epochs", "2", "--epochs", "3", "--seed", "1"]


def progress_lines(err: str) -> list[str]:
    """The lines of ``err`` but Python warnings (``deepbelief: warning: ...``, such as an
    undertrained model's on these tiny runs)."""
    return [line for line in err.splitlines() if not line.startswith("deepbelief: warning: ")]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def captured(*argv):
    """``main(argv)`` with standard output and error captured (for module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["label"] = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    path = tmp_path_factory.mktemp("output") / "data.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def trained(csv_file):
    """A classifier trained with early stopping (validation scores every epoch), as the
    command printed it on a standard error that is not a terminal."""
    model = csv_file.parent / "model"
    code, out, err = captured("train", csv_file, "-o", model, *TRAIN, "--early-stopping")
    assert code == 0, err
    return model, out, err


@pytest.fixture(scope="module")
def generative(csv_file):
    """A generative DBN with up-down fine-tuning."""
    model = csv_file.parent / "generative"
    argv = ["--model", "generative", "--up-down-epochs", "2", "--pretrain-batch-size", "10"]
    code, out, err = captured("train", csv_file, "-o", model, *TRAIN, *argv)
    assert code == 0, err
    return model, out, err


# ---------------------------------------------------------------------- epoch lines
def test_train_logs_every_epoch_of_every_layer_and_of_fine_tuning(trained):
    model, out, err = trained
    assert out == ""  # standard output stays clean
    lines = progress_lines(err)
    for layer, sizes in ((1, "3-4"), (2, "4-3")):
        for epoch in (1, 2):
            pattern = rf"pretrain layer {layer}/2 \({sizes}\): epoch {epoch}/2 {SECONDS}( .*)?"
            assert sum(bool(re.fullmatch(pattern, line)) for line in lines) == 1, (pattern, err)
        # the monitors (computed every few epochs on tiny data, always at the last one)
        last = next(
            line
            for line in lines
            if line.startswith(f"pretrain layer {layer}/2 ({sizes}): epoch 2/2")
        )
        assert re.search(rf" reconstruction_error={NUMBER}( |$)", last), last
    for epoch in (1, 2, 3):
        pattern = (
            rf"fine-tune: epoch {epoch}/3 {SECONDS} loss={NUMBER} val_loss={NUMBER} "
            rf"val_accuracy={NUMBER}"
        )
        assert sum(bool(re.fullmatch(pattern, line)) for line in lines) == 1, (pattern, err)
    # the phases in order, then the summary as the last line
    phases = [line.split(":")[0] for line in lines]
    assert phases.index("pretrain layer 2/2 (4-3)") > phases.index("pretrain layer 1/2 (3-4)")
    assert phases.index("fine-tune") > phases.index("pretrain layer 2/2 (4-3)")
    assert phases.index("refit on all rows") > phases.index("fine-tune")
    assert re.fullmatch(
        rf"deepbelief: wrote model to {re.escape(str(model))}/ \(DBNClassifier 3-4-3-2, "
        rf"\d+\.\d s; early-stopping validation accuracy {NUMBER} at epoch \d+, then refit "
        r"on all rows\)",
        lines[-1],
    ), lines[-1]
    for line in lines[:-1]:  # nothing else: epoch lines (of these phases and any later one)
        assert re.match(rf"[\w /(),-]+: epoch \d+/\d+ {SECONDS}", line), line


def test_up_down_epochs_and_the_label_layer_are_logged(generative):
    model, out, err = generative
    assert out == ""
    lines = progress_lines(err)
    assert any(line.startswith("pretrain layer 1/2 (3-4): epoch 2/2 ") for line in lines), err
    assert any(
        line.startswith("pretrain layer 2/2 (4-3, 2 label units): epoch 1/2 ") for line in lines
    ), err
    for epoch in (1, 2):
        pattern = rf"up-down: epoch {epoch}/2 {SECONDS} generative_error={NUMBER}"
        assert sum(bool(re.fullmatch(pattern, line)) for line in lines) == 1, (pattern, err)
    assert lines[-1].startswith(f"deepbelief: wrote model to {model}/ (DBN 3-4-3 with 2 label")


def test_quiet_says_nothing_and_json_replaces_the_summary(csv_file, tmp_path, capsys):
    code, out, err = run(capsys, "train", csv_file, "-o", tmp_path / "q", *TRAIN, "--quiet")
    assert (code, out, err) == (0, "", "")
    code, out, err = run(capsys, "train", csv_file, "-o", tmp_path / "j", *TRAIN, "--json")
    assert code == 0, err
    assert json.loads(out)["model_dir"] == str(tmp_path / "j")
    assert "epoch 3/3" in err and "deepbelief: wrote" not in err
    code, out, err = run(
        capsys, "train", csv_file, "-o", tmp_path / "qj", *TRAIN, "--json", "--quiet"
    )
    assert code == 0 and err == "" and json.loads(out)["task"] == "classification"


def test_verbose_logs_lines_on_a_terminal_without_the_trainers_duplicate(
    csv_file, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    code, _, err = run(capsys, "train", csv_file, "-o", tmp_path / "m", *TRAIN, "-v")
    assert code == 0, err
    lines = err.splitlines()
    assert sum(line.startswith("fine-tune: epoch ") for line in lines) == 3, err
    assert sum(line.startswith("pretrain layer ") for line in lines) == 4, err
    assert not any(line.startswith("epoch ") for line in lines), err  # training.py's own record


def test_progress_callbacks_bar_on_a_terminal_lines_elsewhere(monkeypatch):
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: True)
    assert progress.progress_callbacks("x", 0) == []
    assert [type(c) for c in progress.progress_callbacks("x", 1)] == [ProgressBar]
    assert [type(c) for c in progress.progress_callbacks("x", True)] == [ProgressBar]
    assert [type(c) for c in progress.progress_callbacks("x", 2)] == [progress.EpochLog]
    monkeypatch.setattr(progress, "stderr_is_terminal", lambda: False)
    assert [type(c) for c in progress.progress_callbacks("x", 1)] == [progress.EpochLog]
    assert progress.progress_callbacks("x", False) == []


def test_epoch_line_format():
    metrics = {"epoch": 3, "learning_rate": 0.1, "loss": 0.41234567, "seconds": 1.234,
               "val_loss": 0.45, "val_accuracy": 0.8125, "note": "text"}  # fmt: skip
    assert progress.epoch_line("fine-tune", metrics, 50) == (
        "fine-tune: epoch 3/50 (1.23 s) loss=0.4123 val_loss=0.45 val_accuracy=0.8125"
    )


def test_epoch_log_says_when_a_run_resumes_and_when_it_stops_early():
    from types import SimpleNamespace

    stream = io.StringIO()
    log = progress.EpochLog("fine-tune", stream=stream)
    loop = SimpleNamespace(epoch=4, batch=2, epochs=10, stop_training=False, best_weights=None)
    log.on_train_begin(loop)
    loop.epoch, loop.batch = 7, 0
    log.on_train_end(loop)  # ended normally, or interrupted: nothing to add
    loop.stop_training, loop.best_weights, loop.best_epoch = True, {}, 5
    log.on_train_end(loop)
    assert stream.getvalue().splitlines() == [
        "fine-tune: resuming after epoch 4/10, batch 2",
        "fine-tune: stopped early after epoch 7/10 (ends with the weights of epoch 5)",
    ]


def test_estimator_with_verbose_1_prints_the_same_lines(capsys):
    from deepbelief import DBNClassifier

    rng = np.random.default_rng(0)
    X, y = rng.random((40, 5)), rng.integers(0, 2, 40)
    with warnings.catch_warnings():  # (an undertrained model's, on this tiny run)
        warnings.simplefilter("ignore")
        DBNClassifier(hidden_layers=(4,), pretrain_epochs=2, epochs=2, verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert [line.split(" (")[0] for line in lines[:4]] == [
        "pretrain layer 1/1",
        "pretrain layer 1/1",
        "fine-tune: epoch 1/2",
        "fine-tune: epoch 2/2",
    ], err
    for line in lines:  # (and the lines of any later phase, such as a refit)
        assert re.match(rf"[\w /(),-]+: epoch \d+/\d+ {SECONDS}", line), line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DBNClassifier(hidden_layers=(4,), pretrain_epochs=1, epochs=1).fit(X, y)  # verbose=0
    assert capsys.readouterr() == ("", "")


# ---------------------------------------------------------------------- summary lines
def summary(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("deepbelief: "), err
    return lines[0]


def test_predict_writes_a_summary_and_quiet_silences_it(trained, csv_file, tmp_path, capsys):
    model, _, _ = trained
    target = tmp_path / "p.csv"
    code, out, err = run(capsys, "predict", model, csv_file, "-o", target)
    assert code == 0 and out == ""
    assert summary(err) == f"deepbelief: wrote 60 predictions of label as CSV to {target}"
    code, out, err = run(capsys, "predict", model, csv_file, "--proba")
    assert code == 0 and out.startswith("label,p(down),p(up)")
    assert summary(err).endswith("with class probabilities as CSV to standard output")
    code, out, err = run(capsys, "predict", model, csv_file, "-o", target, "--quiet")
    assert (code, out, err) == (0, "", "")


def test_evaluate_info_transform_report_summaries(trained, csv_file, tmp_path, capsys):
    model, _, _ = trained
    code, out, err = run(capsys, "evaluate", model, csv_file)
    assert code == 0 and out.startswith("accuracy: ")
    assert re.fullmatch(
        rf"deepbelief: scored {re.escape(str(model))} on {re.escape(str(csv_file))} \(60 rows\): "
        rf"accuracy {NUMBER}",
        summary(err),
    )
    code, out, err = run(capsys, "evaluate", model, csv_file, "--json")
    assert code == 0 and err == "" and json.loads(out)["rows"] == 60

    code, out, err = run(capsys, "info", model)
    assert code == 0 and "3-4-3" in out
    assert summary(err) == f"deepbelief: described {model} (DBNClassifier 3-4-3-2)"
    code, out, err = run(capsys, "info", model, "--json")
    assert code == 0 and err == "" and json.loads(out)["model"] == "classifier"

    features = tmp_path / "f.npy"
    code, out, err = run(capsys, "transform", model, csv_file, "-o", features)
    assert code == 0 and out == ""
    assert summary(err) == f"deepbelief: wrote 60 rows of 3 features to {features}"
    code, out, err = run(capsys, "transform", model, csv_file, "-o", features, "--json")
    assert code == 0 and err == ""
    assert json.loads(out) == {"output": str(features), "rows": 60, "features": 3}
    code, out, err = run(capsys, "transform", model, csv_file, "-o", "-", "--json")
    assert code == 0 and out.startswith("h0,h1,h2\n")  # the data; the summary on stderr
    assert summary(err).endswith("to standard output")

    folder = tmp_path / "report"
    code, out, err = run(capsys, "report", model, "-o", folder)
    assert code == 0 and out == ""
    line = summary(err)
    assert line.startswith(f"deepbelief: wrote report of {model} to {folder / 'report.html'}")
    assert "learning_curves.png" in line


def test_predict_warns_of_a_row_with_no_values(trained, tmp_path, capsys):
    """score left such a row unscored and said so; predict made up its prediction silently."""
    data = tmp_path / "rows.csv"
    data.write_text("a,b,c\n0.1,0.2,0.3\n,,\n")
    code, out, err = run(capsys, "predict", trained[0], data)
    assert code == 0 and len(out.splitlines()) == 3
    assert "rows.csv: 1 row(s) with no values (the first: row 2): predicted from the values " \
        "filled in as in training" in err  # fmt: skip


def test_evaluate_labels_the_confusion_matrix_columns(trained, csv_file, capsys):
    """Its columns (the predicted classes) had no labels."""
    code, out, _ = run(capsys, "evaluate", trained[0], csv_file)
    lines = out.splitlines()
    at = lines.index("confusion matrix (rows: true class, columns: predicted):")
    assert lines[at + 1].split() == ["down", "up"]
    assert lines[at + 2].split()[0] == "down" and lines[at + 3].split()[0] == "up"
    counts = [int(v) for line in lines[at + 2 : at + 4] for v in line.split()[1:]]
    assert code == 0 and sum(counts) == 60


def test_a_report_with_data_scores_the_model_on_it_as_evaluate_does(
    trained, csv_file, tmp_path, capsys
):
    """``report MODEL DATA``: the metrics on DATA (those of ``evaluate``) and their confusion
    matrix; the report could not take data, so a model trained without held-out rows had
    none. A later report without data leaves no stale plot of the earlier one's."""
    model, _, _ = trained
    folder = tmp_path / "report"
    code, out, err = run(capsys, "report", model, csv_file, "-o", folder, "--json")
    assert code == 0, err
    written = json.loads(out)
    _, scored, _ = run(capsys, "evaluate", model, csv_file, "--json")
    scored = json.loads(scored)
    assert written["data"] == {"source": str(csv_file), "metrics": scored}
    assert str(folder / "data_confusion_matrix.png") in written["plots"]
    html = (folder / "report.html").read_text()
    assert f"Metrics on {csv_file}" in html and f"Confusion matrix on {csv_file}" in html
    assert f"{scored['accuracy']:.4g}" in html
    code, _, err = run(capsys, "report", model, "-o", folder)
    assert code == 0 and not (folder / "data_confusion_matrix.png").exists()


def test_a_regressors_report_with_data_plots_predicted_against_actual(tmp_path, capsys):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    frame["price"] = 3 * frame["a"] - frame["b"] + rng.normal(scale=0.1, size=80)
    data = tmp_path / "houses.csv"
    frame.to_csv(data, index=False)
    model, folder = tmp_path / "model", tmp_path / "report"
    code, _, err = run(capsys, "train", data, "-o", model, *TRAIN, "--task", "regression")
    assert code == 0, err
    code, out, err = run(capsys, "report", model, data, "-o", folder, "--json")
    assert code == 0, err
    metrics = json.loads(out)["data"]["metrics"]
    assert set(metrics) == {"r2", "rmse", "rows"} and metrics["rows"] == 80
    png = __import__("matplotlib.image").image.imread(folder / "predicted_vs_actual.png")
    assert png.shape[0] >= 300 and png[..., :3].std() > 0.05
    assert "Predicted against actual values on" in (folder / "report.html").read_text()
    code, _, err = run(capsys, "report", model, tmp_path / "absent.csv", "-o", tmp_path / "r2")
    assert code == 2 and "absent.csv" in err and not (tmp_path / "r2").exists()


def test_sample_summaries(generative, tmp_path, capsys):
    model, _, _ = generative
    target = tmp_path / "s.csv"
    code, out, err = run(capsys, "sample", model, "-n", "4", "--gibbs-steps", "5", "-o", target)
    assert code == 0 and out == ""
    assert summary(err) == (
        f"deepbelief: wrote 4 samples (3 columns and their class, 'label') to {target}"
    )
    code, out, err = run(
        capsys, "sample", model, "-n", "2", "--label", "up", "--gibbs-steps", "5", "-o", "-"
    )
    assert code == 0 and len(out.splitlines()) == 3
    assert summary(err) == (
        "deepbelief: wrote 2 samples of class up (3 columns and their class, 'label') to "
        "standard output"
    )
    code, out, err = run(
        capsys, "sample", model, "-n", "2", "--gibbs-steps", "5", "-o", target, "--json"
    )
    assert code == 0 and err == ""
    assert json.loads(out) == {"output": str(target), "samples": 2, "columns": 3, "label": None,
                               "class_column": "label"}  # fmt: skip


def test_python_warnings_are_one_line_and_quiet_hides_them(trained, capsys, monkeypatch):
    from deepbelief import commands

    describe = commands.describe

    def warning_describe(*args):
        warnings.warn("the model\n  may be undertrained", UserWarning, stacklevel=1)
        return describe(*args)

    monkeypatch.setattr(commands, "describe", warning_describe)
    model, _, _ = trained
    code, _, err = run(capsys, "info", model)
    assert code == 0
    assert err.splitlines()[0] == "deepbelief: warning: the model may be undertrained", err
    assert len(err.splitlines()) == 2
    code, _, err = run(capsys, "info", model, "--quiet")
    assert (code, err) == (0, "")


# ---------------------------------------------------------------------- predict --json
def test_predict_json_matches_the_csv(trained, csv_file, tmp_path, capsys):
    model, _, _ = trained
    code, out, _ = run(capsys, "predict", model, csv_file, "--proba")
    assert code == 0
    table = pd.read_csv(io.StringIO(out))
    code, out, err = run(capsys, "predict", model, csv_file, "--proba", "--json")
    assert code == 0 and err == ""  # the JSON on standard output is the whole answer
    document = json.loads(out)
    assert document["target"] == "label" and document["rows"] == 60
    assert document["classes"] == ["down", "up"]
    assert document["predictions"] == list(table["label"])
    probabilities = pd.DataFrame(document["probabilities"])
    np.testing.assert_allclose(probabilities["down"], table["p(down)"], rtol=1e-6)
    np.testing.assert_allclose(probabilities["up"], table["p(up)"], rtol=1e-6)
    target = tmp_path / "p.json"
    code, out, err = run(capsys, "predict", model, csv_file, "--json", "-o", target)
    assert code == 0 and out == "" and summary(err).endswith(f"as JSON to {target}")
    written = json.loads(target.read_text())
    assert written["predictions"] == document["predictions"] and "probabilities" not in written


# ---------------------------------------------------------------------- help
def test_help_shows_the_defaults(capsys):
    code, out, _ = run(capsys, "train", "--help")
    text = " ".join(out.split())  # argparse wraps lines
    assert code == 0
    for expected in (
        "hidden layer sizes (default: 256 256, or the --preset's)",
        "epochs per layer (default: auto: more for fewer rows, 11 to 50",
        "rows per update (default: auto: 20, 100 from 20,000 rows",
        "(default: 0.9)",  # --momentum
        "(default: auto)",
        "learning rate (default: by optimizer and task",
        "(default: the last)",
    ):
        assert expected in text, expected


def test_every_option_has_help_and_shows_its_default():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.choices and isinstance(a.choices, dict))
    for name, sub in subparsers.choices.items():
        formatter = sub._get_formatter()
        for action in sub._actions:
            if not action.option_strings or action.dest == "help":
                continue
            assert action.help, (name, action.option_strings)
            text = formatter._get_help_string(action)
            shown = action.default not in (None, False)
            if shown:
                assert "default:" in text, (name, action.option_strings, text)
    # options without a value say what happens without them
    train = subparsers.choices["train"]
    for dest in ("pretrain_lr", "lr", "max_norm", "target", "image_size", "labels"):
        action = next(a for a in train._actions if a.dest == dest)
        assert action.default is None and "default:" in action.help, dest


def test_help_imports_no_torch():
    """``deepbelief --help`` and ``train --help`` parse without loading torch, scikit-learn,
    pandas or numpy (what makes them fast; timings belong in benchmarks)."""
    script = (
        "import contextlib, io, sys\n"
        "import deepbelief, deepbelief.cli\n"
        "heavy = {'torch', 'sklearn', 'pandas', 'numpy', 'scipy', 'matplotlib'}\n"
        "codes = []\n"
        "for argv in (['--help'], ['train', '--help'], ['predict', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        codes.append(deepbelief.cli.main(argv))\n"
        "deepbelief.__version__\n"
        "print(codes, sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 0, 0] []", done.stdout


def test_package_names_load_lazily():
    import deepbelief

    assert set(deepbelief.__all__) <= set(dir(deepbelief))
    from deepbelief import RBM, DBNClassifier, load

    assert RBM.__name__ == "RBM" and DBNClassifier.__name__ == "DBNClassifier"
    assert load is deepbelief.load
    with pytest.raises(AttributeError):
        deepbelief.no_such_name  # noqa: B018
