"""Malformed input through the command line: each case exits with code 2 and one line on
stderr that names the problem (file, column, row or value); never a traceback."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pandas as pd
import pytest

from deepbelief.cli import main

TINY = ["--layers", "4", "--pretrain-epochs", "1", "--epochs", "1", "--quiet"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A folder with a good CSV and a model trained on it (numeric + categorical columns)."""
    folder = tmp_path_factory.mktemp("errors")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "x": rng.normal(size=60),
        "colour": rng.choice(["red", "blue"], size=60),
        "label": rng.choice(["a", "b"], size=60),
    })  # fmt: skip
    frame.to_csv(folder / "good.csv", index=False)
    assert main(["train", str(folder / "good.csv"), "-o", str(folder / "model"), *TINY]) == 0
    np.save(folder / "x.npy", rng.random((40, 5)))
    unsupervised = ["--layers", "4", "--pretrain-epochs", "1", "--quiet"]  # rows without a target
    assert (
        main(["train", str(folder / "x.npy"), "-o", str(folder / "arraymodel"), *unsupervised]) == 0
    )
    return folder


def trained(data, model, *options):
    assert main(["train", str(data), "-o", str(model), *TINY, *options]) == 0
    return model


def write(path, text):
    path.write_text(text)
    return path


def copy_model(ws, tmp_path):
    import shutil

    return shutil.copytree(ws / "model", tmp_path / "model")


def tamper(model):
    data = bytearray((model / "model.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (model / "model.safetensors").write_bytes(bytes(data))
    return model


def truncate(model):
    path = model / "model.safetensors"
    path.write_bytes(path.read_bytes()[:200])
    return model


def newer_card(model):
    card = json.loads((model / "deepbelief.json").read_text())
    card["format_version"] = 99
    (model / "deepbelief.json").write_text(json.dumps(card))
    return model


def edited_card(model):
    card = json.loads((model / "deepbelief.json").read_text())
    card["input"]["preprocessor"]["columns"][0]["scale"] *= 2
    (model / "deepbelief.json").write_text(json.dumps(card))
    return model


def truncated_idx(tmp_path):
    payload = struct.pack(">BBBBIII", 0, 0, 8, 3, 10, 28, 28) + bytes(100)
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(payload))
    return path


def bad_image_folder(tmp_path):
    for name in ("cats", "dogs"):
        (tmp_path / "img" / name).mkdir(parents=True)
    (tmp_path / "img" / "cats" / "ok.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (tmp_path / "img" / "dogs" / "d.png").write_bytes(b"garbage")
    return tmp_path / "img"


def interrupted(ws, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.safetensors").write_bytes(b"x")
    return tmp_path / "run"


# (name, argv builder (ws, tmp_path) -> list, words the message must contain)
CASES = [
    (
        "ragged rows",
        lambda ws, t: ["train", write(t / "r.csv", "a,b,c\n1,2,3\n4,5,6,7\n"), "-o", t / "m"],
        ["r.csv"],
    ),  # fmt: skip
    (
        "empty file",
        lambda ws, t: ["train", write(t / "e.csv", ""), "-o", t / "m"],
        ["e.csv", "empty"],
    ),
    (
        "header only",
        lambda ws, t: ["train", write(t / "h.csv", "a,b,label\n"), "-o", t / "m"],
        ["h.csv", "no data rows"],
    ),
    (
        "unknown target name",
        lambda ws, t: ["train", ws / "good.csv", "--target", "nope", "-o", t / "m"],
        ["nope"],
    ),
    (
        "one class only",
        lambda ws, t: [
            "train",
            write(t / "one.csv", "x,label\n1,a\n2,a\n3,a\n"),
            "-o",
            t / "m",
            "--task",
            "classification",
        ],
        ["single class"],
    ),  # fmt: skip
    (
        "NaN target",
        lambda ws, t: ["train", write(t / "nan.csv", "x,y\n1,0\n2,\n3,1\n4,0\n"), "-o", t / "m"],
        ["nan.csv", "y"],
    ),  # fmt: skip
    (
        "text in a numeric column at predict",
        lambda ws, t: [
            "predict",
            ws / "model",
            write(t / "p.csv", "x,colour\n0.5,red\nabc,blue\n"),
        ],
        ["x", "abc"],
    ),
    (
        "unseen category at predict",
        lambda ws, t: [
            "predict",
            ws / "model",
            write(t / "p.csv", "x,colour\n0.5,red\n0.1,green\n"),
        ],
        ["colour", "green"],
    ),
    (
        "missing column at predict",
        lambda ws, t: ["predict", ws / "model", write(t / "p.csv", "x\n0.5\n")],
        ["colour"],
    ),
    (
        "wrong feature count at transform",
        lambda ws, t: [
            "transform",
            ws / "arraymodel",
            (np.save(t / "w.npy", np.zeros((3, 7))), t / "w.npy")[1],
            "-o",
            "-",
        ],
        ["7", "5"],
    ),
    (  # it ran, pulling every value towards one end
        "denoise with a fine-tuned classifier",
        lambda ws, t: ["denoise", ws / "model", ws / "good.csv", "-o", t / "d.csv"],
        ["model: denoise needs a generative or unsupervised model", "classifier"],
    ),
    (
        "unsupervised model has nothing to predict",
        lambda ws, t: ["predict", ws / "arraymodel", ws / "x.npy"],
        ["unsupervised"],
    ),
    ("unreadable image", lambda ws, t: ["train", bad_image_folder(t), "-o", t / "m"], ["png"]),
    (
        "truncated IDX",
        lambda ws, t: ["train", truncated_idx(t), "-o", t / "m", "--no-target"],
        ["images-idx3-ubyte.gz"],
    ),
    ("missing data file", lambda ws, t: ["train", t / "absent.csv", "-o", t / "m"], ["absent.csv"]),
    (
        "unknown data kind",
        lambda ws, t: ["train", write(t / "data.xyz", "1"), "-o", t / "m"],
        ["data.xyz"],
    ),
    ("missing model directory", lambda ws, t: ["info", t / "nowhere"], ["nowhere"]),
    ("tampered model file", lambda ws, t: ["info", tamper(copy_model(ws, t))], ["checksum"]),
    (
        "truncated model file",
        lambda ws, t: ["info", truncate(copy_model(ws, t))],
        ["model.safetensors"],
    ),
    ("model of a newer format", lambda ws, t: ["info", newer_card(copy_model(ws, t))], ["upgrade"]),
    ("edited model card", lambda ws, t: ["info", edited_card(copy_model(ws, t))], ["checksum"]),
    (  # it used to be ignored: an unsupervised model has no fine-tuning
        "fine-tuning option for an unsupervised model",
        lambda ws, t: [
            "train",
            ws / "x.npy",
            "--model",
            "unsupervised",
            "-o",
            t / "m",
            "--epochs",
            "5",
            "--dropout",
            "0.5",
        ],  # fmt: skip
        ["--epochs, --dropout: not for an unsupervised model", "drop them", "--pretrain-epochs"],
    ),
    (
        "preset for a model without a target",
        lambda ws, t: [
            "train",
            ws / "good.csv",
            "--no-target",
            "-o",
            t / "m",
            "--preset",
            "lee2009",
        ],  # fmt: skip
        ["--preset: not for an unsupervised model", "drop it ("],
    ),
    (
        "negative epoch count",
        lambda ws, t: ["train", ws / "good.csv", "-o", t / "m", "--epochs", "-3"],
        ["--epochs", "-3"],
    ),
    (
        "zero epoch count",
        lambda ws, t: ["train", ws / "good.csv", "-o", t / "m", "--pretrain-epochs", "0"],
        ["--pretrain-epochs", "0"],
    ),  # fmt: skip
    (
        "unknown unit type",
        lambda ws, t: ["train", ws / "good.csv", "-o", t / "m", "--hidden", "sigmoidal"],
        ["sigmoidal"],
    ),  # fmt: skip
    (
        "not a number",
        lambda ws, t: ["train", ws / "good.csv", "-o", t / "m", "--lr", "fast"],
        ["fast"],
    ),
    (
        "fraction out of range",
        lambda ws, t: ["train", ws / "good.csv", "-o", t / "m", "--validation-split", "1.5"],
        ["1.5"],
    ),  # fmt: skip
    (
        "bad image size",
        lambda ws, t: ["train", ws / "good.csv", "-o", t / "m", "--image-size", "28"],
        ["28"],
    ),
    (
        "unwritable output path",
        lambda ws, t: [
            "predict",
            ws / "model",
            ws / "good.csv",
            "-o",
            write(t / "f", "x") / "out.csv",
        ],
        ["out.csv"],
    ),
    (
        "output model path is a file",
        lambda ws, t: ["train", ws / "good.csv", "-o", write(t / "f", "")],
        ["not a folder"],
    ),
    (
        "unknown config option",
        lambda ws, t: [
            "train",
            ws / "good.csv",
            "-o",
            t / "m",
            "--config",
            write(t / "c.toml", "colour = 3\n"),
        ],
        ["c.toml", "colour"],
    ),
    (
        "invalid TOML",
        lambda ws, t: [
            "train",
            ws / "good.csv",
            "-o",
            t / "m",
            "--config",
            write(t / "c.toml", "layers = [\n"),
        ],
        ["c.toml", "TOML"],
    ),
    (
        "bad value in config",
        lambda ws, t: [
            "train",
            ws / "good.csv",
            "-o",
            t / "m",
            "--config",
            write(t / "c.toml", "epochs = 0\n"),
        ],
        ["c.toml", "epochs"],
    ),
    *[  # they were Python's "invalid literal for int()", "not a number" and an unnamed file;
        # YAML's null said "invalid literal for int() with base 10: 'None'", and a key given
        # twice (or in both spellings) kept the last silently
        (
            f"config {name}",
            lambda ws, t, text=text, suffix=suffix: [
                "train",
                ws / "good.csv",
                "-o",
                t / "m",
                "--config",
                write(t / f"c{suffix}", text),
            ],
            words,
        )
        for name, suffix, text, words in [
            ("seed: null", ".yaml", "seed: null\n", ["c.yaml", "'seed' has no value"]),
            ("epochs twice", ".yaml", "epochs: 3\nepochs: 4\n", ["'epochs' is given twice"]),
            (
                "both spellings",
                ".toml",
                "pretrain-epochs = 3\npretrain_epochs = 4\n",
                ["c.toml", "is given twice"],
            ),
        ]
    ],  # fmt: skip
    *[
        (
            f"config {name}",
            lambda ws, t, text=text: [
                "train",
                ws / "good.csv",
                "-o",
                t / "m",
                "--config",
                write(t / "c.toml", text),
            ],
            words,
        )
        for name, text, words in [
            ("seed = true", "seed = true\n", ["c.toml", "'seed' takes a value", "on/off"]),
            ("epochs = 1.5", "epochs = 1.5\n", ["c.toml", "'epochs'", "not an integer: '1.5'"]),
            (
                "early_stopping = 'yes'",
                'early_stopping = "yes"\n',
                ["c.toml", "'early_stopping' must be true or false"],
            ),
        ]
    ],  # fmt: skip
    ("resume without a run", lambda ws, t: ["train", "--resume", t], ["run.json"]),
    (
        "interrupted run in the way",
        lambda ws, t: ["train", ws / "good.csv", "-o", interrupted(ws, t)],
        ["--resume"],
    ),
    (
        "sampling a classifier",
        lambda ws, t: ["sample", ws / "model", "-o", t / "s.csv"],
        ["does not sample"],
    ),
    (
        "PNG samples of a table",
        lambda ws, t: ["sample", ws / "arraymodel", "-o", t / "s.png"],
        ["PNG"],
    ),
    (
        "evaluate without the target",
        lambda ws, t: ["evaluate", ws / "model", write(t / "p.csv", "x,colour\n0.5,red\n")],
        ["label"],
    ),
    (
        "averaging with early stopping",
        lambda ws, t: [
            "train",
            ws / "good.csv",
            "-o",
            t / "m",
            "--early-stopping",
            "--average-epochs",
            "2",
        ],
        ["--average-epochs", "--early-stopping"],
    ),  # fmt: skip
    (  # the advice was the training option --missing impute, which predict does not take
        "missing value for a model trained to refuse them",
        lambda ws, t: [
            "predict",
            trained(ws / "good.csv", t / "strict", "--missing", "error"),
            write(t / "p.csv", "x,colour\n,red\n"),
        ],
        ["p.csv", "column 'x', row 1", "trained to refuse them (--missing error): fill them"],
    ),
    ("no command", lambda ws, t: [], ["command"]),
    (  # it used to say "invalid choice: '3'"
        "option before the command",
        lambda ws, t: ["--layers", "3", "train", ws / "good.csv", "-o", t / "m"],
        ["--layers goes after the command: deepbelief train"],
    ),
    ("train without data", lambda ws, t: ["train", "-o", t / "m"], ["DATA"]),
]


@pytest.mark.parametrize("name, build, words", CASES, ids=[c[0] for c in CASES])
def test_malformed_input_exits_2_with_one_line(ws, tmp_path, capsys, name, build, words):
    argv = [str(a) for a in build(ws, tmp_path)]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (name, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])


def test_there_are_at_least_25_cases():
    assert len(CASES) >= 25


def test_debug_shows_the_traceback(ws, tmp_path):
    with pytest.raises(Exception, match="absent"):
        main(["train", str(tmp_path / "absent.csv"), "-o", str(tmp_path / "m"), "--debug"])


# ---------------------------------------------------------------------- column typing (#13.6)
def typing_csv(tmp_path, name, x=lambda i: f"{i * 0.37:.2f}", label=lambda i: "ab"[i % 2]):
    """40 rows: x (numbers), colour, label; ``x(i)`` and ``label(i)`` give row i's cells."""
    rows = [f"{x(i)},{['red', 'blue'][i % 2]},{label(i)}" for i in range(40)]
    return write(tmp_path / name, "x,colour,label\n" + "\n".join(rows) + "\n")


def abc(i):
    return "abc"[i % 3]


def train_typing(t, name, *options, **cells):
    return ["train", typing_csv(t, name, **cells), "-o", t / "m", *options, *TINY]


def wide_csv(t):
    rows = "".join(f"n{i % 1100},{i},{i % 2}\n" for i in range(1200))
    return write(t / "w.csv", "note,x,label\n" + rows)


TYPING_CASES = [
    (
        "stray token in a numeric column",
        lambda ws, t: train_typing(t, "s.csv", x=lambda i: "abc" if i == 6 else i),
        ["s.csv", "column 'x'", "row 7", "'abc'", "--non-numeric missing"],
    ),
    (
        "decimal comma",
        lambda ws, t: train_typing(t, "c.csv", x=lambda i: '"6,7"' if i == 9 else i),
        ["c.csv", "column 'x'", "row 10", "'6,7'", "not a number"],
    ),
    (
        "stray token read as missing but missing values refused",
        lambda ws, t: train_typing(
            t, "r.csv", "--non-numeric", "missing", "--missing", "error", x=lambda i: i or "?"
        ),
        ["r.csv", "row 1", "'?'", "--missing impute"],
    ),
    (
        "stray token in the target",
        lambda ws, t: train_typing(t, "t.csv", label=lambda i: "x" if i == 5 else i % 2),
        ["t.csv", "target column 'label'", "row 6", "'x'", "--non-numeric text"],
    ),
    (
        "text column too wide to one-hot encode",
        lambda ws, t: ["train", wide_csv(t), "-o", t / "m", *TINY],
        ["w.csv", "'note'", "1100 distinct values", "1100 columns wide", "5.3 MB", "--drop-ids"],
    ),
    (
        "unknown label at evaluation",
        lambda ws, t: ["evaluate", ws / "model", typing_csv(t, "u.csv", label=abc)],
        ["u.csv", "never saw: c", "classes are a, b"],
    ),
    (
        "bad --non-numeric",
        lambda ws, t: ["train", ws / "good.csv", "-o", t / "m", "--non-numeric", "drop"],
        ["--non-numeric", "drop"],
    ),
]


@pytest.mark.parametrize("name, build, words", TYPING_CASES, ids=[c[0] for c in TYPING_CASES])
def test_column_typing_errors_exit_2_with_one_line(ws, tmp_path, capsys, name, build, words):
    code = main([str(a) for a in build(ws, tmp_path)])
    out, err = capsys.readouterr()
    assert code == 2, (name, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, lines[0])
    assert not (tmp_path / "m" / "model.safetensors").exists()


def test_a_folder_that_is_no_model_is_named_as_such(tmp_path, capsys):
    """It said '<folder>/deepbelief.json: no such file'."""
    (tmp_path / "images").mkdir()
    code = main(["info", str(tmp_path / "images")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "images: not a model folder (no deepbelief.json)" in err


def test_fine_tuning_options_for_data_without_a_target_are_refused(tmp_path, capsys):
    """--model unsupervised refused them, but data that turned out to have no target (an .npz
    without y) trained an unsupervised model and ignored them silently."""
    np.savez(tmp_path / "rows.npz", A=np.random.default_rng(0).random((50, 4)))
    code = main(["train", str(tmp_path / "rows.npz"), "-o", str(tmp_path / "m"), "--layers", "4",
                 "--pretrain-epochs", "1", "--epochs", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert (
        "--epochs: " in err
        and "drop it, or" in err
        and "rows.npz has no target, so the model is unsupervised" in err
    )
    assert not (tmp_path / "m").exists()
    code = main(["train", str(tmp_path / "rows.npz"), "-o", str(tmp_path / "m"), "--layers", "4",
                 "--pretrain-epochs", "1", "--quiet"])  # fmt: skip
    assert code == 0


def test_info_lists_the_columns_a_table_model_expects(ws, capsys):
    """What predict needs was only in deepbelief.json."""
    assert main(["info", str(ws / "model")]) == 0
    out = capsys.readouterr().out
    assert "  input columns: x (numeric), colour (categorical: 2 values); target label\n" in out
    assert main(["info", str(ws / "model"), "--json"]) == 0
    columns = json.loads(capsys.readouterr().out)["input"]["columns"]
    assert columns == [
        {"name": "x", "kind": "numeric"},
        {"name": "colour", "kind": "categorical", "categories": ["blue", "red"]},
    ]


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "{data}", "-o", "{m}", "--layres", "4"], "--layres 4 (did you mean --layers?)"),
        (["trian", "{data}"], "did you mean 'train'?"),
        (["train", "{data}", "-o", "{m}", "--hidden", "gausian"], "did you mean 'gaussian'?"),
        (["predict", "{model}", "{data}", "--jsn"], "--jsn (did you mean --json?)"),
        (
            ["train", "{data}", "-o", "{m}", "--config", "{config}"],
            "unknown option 'pretrian_epochs'; did you mean 'pretrain_epochs'?",
        ),
    ],  # fmt: skip
)
def test_a_mistyped_option_or_choice_is_answered_with_the_closest(ws, tmp_path, capsys, argv,
                                                                   words):  # fmt: skip
    config = write(tmp_path / "run.toml", "pretrian_epochs = 2\n")
    paths = {"data": ws / "good.csv", "m": tmp_path / "m", "model": ws / "model", "config": config}
    code = main([word.format(**paths) for word in argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and words in err, err
    assert not (tmp_path / "m").exists()


def test_an_option_like_no_other_gets_no_suggestion(ws, tmp_path, capsys):
    code = main(["train", str(ws / "good.csv"), "-o", str(tmp_path / "m"), "--zzzzzz"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "deepbelief: unrecognized arguments: --zzzzzz"


def test_up_down_epochs_for_a_classifier_or_regressor_are_refused(ws, tmp_path, capsys):
    """A classifier or regressor (by --model, or by the data's target) ignored
    --up-down-epochs silently: it is fine-tuned by backprop."""
    model, two = tmp_path / "m", ["--layers", "4", "4", "--pretrain-epochs", "1", "--epochs", "1"]
    for extra, words in [
        ([], "good.csv has a target, so the model is a classifier, fine-tuned by backprop"),
        (["--model", "regressor"], "--model regressor is fine-tuned by backprop"),
    ]:
        code = main(["train", str(ws / "good.csv"), "-o", str(model), *two, "--quiet",
                     "--up-down-epochs", "3", *extra])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("deepbelief: error: --up-down-epochs: ") and words in err
        assert "drop it, or train --model generative" in err and not model.exists()
    assert (
        main(["train", str(ws / "good.csv"), "-o", str(model), *TINY, "--up-down-epochs", "0"]) == 0
    )  # fmt: skip (none: nothing to ignore)


def test_a_labels_file_given_as_its_own_data_is_refused(tmp_path, capsys):
    np.save(tmp_path / "labels.npy", np.arange(30) % 3)
    path = str(tmp_path / "labels.npy")
    code = main(["train", path, "--labels", path, "-o", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "given as both the data and its --labels" in err, err
