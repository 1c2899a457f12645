"""Model files: round trips, atomic writes, and refusal of corrupt, foreign or newer files."""

import hashlib
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save, save_file

import deepbelief
from deepbelief import io
from deepbelief.errors import ModelFileError
from deepbelief.nn import RBM, GaussianUnits, MixedUnits, SoftmaxUnits

SRC = Path(deepbelief.__file__).parent


def small_rbm():
    gen = torch.Generator().manual_seed(0)
    visible = MixedUnits([("bernoulli", 3), (SoftmaxUnits([2, 2]), 4)])
    return RBM(7, 5, visible=visible, hidden="relu", weight_std=0.3, generator=gen)


def test_module_round_trip_gives_the_same_outputs(tmp_path):
    model = small_rbm()
    path = tmp_path / "m.safetensors"
    deepbelief.save(model, path)
    again = deepbelief.load(path)
    v = model.visible.sample(torch.zeros(6, 7), generator=torch.Generator().manual_seed(1))
    assert again.config() == model.config()
    assert torch.equal(again.free_energy(v), model.free_energy(v))
    assert torch.equal(again.hidden_mean(v), model.hidden_mean(v))


def test_learned_variance_module_round_trip(tmp_path):
    model = RBM(3, 2, visible=GaussianUnits(learn_variance=True), dtype=torch.float64)
    with torch.no_grad():
        model.visible_logvar.copy_(torch.tensor([0.1, -0.2, 0.3]))
    deepbelief.save(model, tmp_path / "g.safetensors")
    again = deepbelief.load(tmp_path / "g.safetensors")
    assert again.weight.dtype == torch.float64
    assert torch.equal(again.visible_logvar, model.visible_logvar)


def test_pack_unpack_round_trip_keeps_nested_tensors_and_int_keys():
    tree = {
        "a": [1, 2.5, None, "x"],
        "t": (3, (4, 5)),
        "b": {0: torch.arange(3), "c": torch.ones(2, 2)},
    }
    config, tensors = io.pack(tree)
    json.dumps(config)  # JSON-able
    back = io.unpack(json.loads(json.dumps(config)), tensors)
    assert back["a"] == tree["a"] and back["t"] == (3, (4, 5))
    assert torch.equal(back["b"][0], tree["b"][0]) and torch.equal(back["b"]["c"], tree["b"]["c"])


def saved(tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    deepbelief.save(small_rbm(), path)
    return path


def test_truncated_file_is_refused(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    for cut in (0, 5, 100, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="truncated|corrupt|not a deepbelief"):
            deepbelief.load(path)


def test_a_flipped_byte_in_the_weights_is_detected(tmp_path):
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        deepbelief.load(path)


def test_an_edited_config_is_detected(tmp_path):
    path = saved(tmp_path)
    data = path.read_bytes()
    edited = data.replace(b'\\"n_hidden\\": 5', b'\\"n_hidden\\": 6')
    assert edited != data
    path.write_bytes(edited)
    with pytest.raises(ModelFileError, match="checksum"):
        deepbelief.load(path)


def test_foreign_files_are_refused(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign)
    with pytest.raises(ModelFileError, match="not a deepbelief model file"):
        deepbelief.load(foreign)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a model" * 10)
    with pytest.raises(ModelFileError):
        deepbelief.load(text)
    with pytest.raises(ModelFileError, match="cannot read"):
        deepbelief.load(tmp_path / "missing.safetensors")
    with pytest.raises(ModelFileError, match="folder"):
        deepbelief.load(tmp_path)


def rewrite_metadata(path: Path, **changes):
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"].update(changes)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + size :])


def test_a_newer_format_is_refused_with_advice(tmp_path):
    path = saved(tmp_path)
    rewrite_metadata(path, format_version=str(io.FORMAT_VERSION + 1))
    with pytest.raises(ModelFileError, match="newer|upgrade"):
        deepbelief.load(path)


def test_an_unknown_kind_is_refused(tmp_path):
    path = tmp_path / "mystery.safetensors"
    io.write_file(path, "Mystery", {"w": torch.zeros(2)})  # e.g. a class of a newer version
    assert io.read_file(path)[0] == "Mystery"
    with pytest.raises(ModelFileError, match="unknown object kind"):
        deepbelief.load(path)


LOAD_IN_A_FRESH_PROCESS = """
import sys
from deepbelief.io import load
before = sorted(m for m in sys.modules if m.startswith("deepbelief."))
names = [type(load(path)).__name__ for path in sys.argv[1:]]
print(" ".join(names))
print(" ".join(before))
"""


@pytest.mark.filterwarnings("ignore::deepbelief.errors.UndertrainedWarning")
def test_load_in_a_fresh_process_knows_every_saved_kind(tmp_path):
    # deepbelief imports its estimators lazily: io.load must import the modules that register
    # the kinds (not only ``deepbelief.load``, which does it in deepbelief/__init__.py)
    X = np.random.default_rng(0).random((20, 4))
    y = np.arange(20) % 2
    rbm, dbn, module = (tmp_path / f"{n}.safetensors" for n in ("rbm", "dbn", "module"))
    deepbelief.RBM(n_components=3, n_iter=1, random_state=0).fit(X).save(rbm)
    tiny = dict(pretrain_epochs=1, pretrain_batch_size=10, epochs=1, batch_size=10)
    deepbelief.DBNClassifier((3,), **tiny, early_stopping=False, random_state=0).fit(X, y).save(dbn)
    deepbelief.save(small_rbm(), module)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(rbm), str(dbn), str(module)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded, imported_before = done.stdout.splitlines()
    assert loaded.split() == ["RBM", "DBNClassifier", "RBM"]
    # ``import deepbelief.io`` alone stays cheap: no estimators until a file needs them
    assert "deepbelief.estimators" not in imported_before.split()
    assert "deepbelief.dbn_estimators" not in imported_before.split()


def test_write_is_atomic_a_failed_save_keeps_the_old_file(tmp_path):
    path = saved(tmp_path)
    before = path.read_bytes()

    class Broken:
        _file_kind = "nn.RBM"

        def _to_state(self):
            return {"config": {}, "state_dict": {"w": object()}}  # cannot be saved

    with pytest.raises(TypeError):
        io.save(Broken(), path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_interrupted_byte_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "fsync", crash)
    with pytest.raises(OSError):
        io.atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_no_pickle_anywhere_in_the_package():
    pattern = re.compile(
        r"\bimport pickle\b|\bpickle\.(loads?|dumps?|Unpickler)|torch\.save\(|torch\.load\("
        r"|np\.load\((?![^)]*allow_pickle=False)"
    )
    offenders = [
        f"{p.name}:{i}"
        for p in SRC.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_estimator_file_holds_no_pickled_objects(tmp_path):
    X = np.random.default_rng(0).random((30, 5))
    est = deepbelief.RBM(n_components=3, n_iter=2, random_state=0, sampler="pt").fit(X)
    est.save(tmp_path / "e.safetensors")
    data = (tmp_path / "e.safetensors").read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    json.loads(header["__metadata__"]["config"])  # the whole configuration is plain JSON
    assert header["__metadata__"]["kind"] == "RBM"


def rewrite_header(path: Path, edit) -> None:
    """Apply ``edit`` to the parsed safetensors header and write the file back."""
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + size :])


def test_a_changed_tensor_dtype_or_shape_is_detected(tmp_path):
    # the tensor bytes and the config are unchanged, so only a checksum over the header's
    # tensor layout notices: without it the weights would load reinterpreted as integers
    path = saved(tmp_path)
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    layout = json.loads(data[8 : 8 + size])
    name = next(k for k, v in layout.items() if k.endswith("weight") and v["dtype"] == "F32")
    assert layout[name]["shape"] == [7, 5]
    rewrite_header(path, lambda h: h[name].update(dtype="I32"))
    with pytest.raises(ModelFileError, match="checksum"):
        deepbelief.load(path)
    path = saved(tmp_path)
    rewrite_header(path, lambda h: h[name].update(shape=h[name]["shape"][::-1]))
    with pytest.raises(ModelFileError, match="checksum"):
        deepbelief.load(path)


def test_format_version_1_files_are_still_read(tmp_path):
    model = small_rbm()
    config, tensors = io.pack(model._to_state())
    config_json = json.dumps(config, sort_keys=True)
    body = save(tensors, metadata={"placeholder": "x"})
    (size,) = struct.unpack("<Q", body[:8])
    metadata = {
        "format": "deepbelief",
        "format_version": "1",
        "package_version": "0.1.0",
        "kind": "nn.RBM",
        "config": config_json,
        "sha256": hashlib.sha256(config_json.encode() + body[8 + size :]).hexdigest(),
    }
    path = tmp_path / "v1.safetensors"
    path.write_bytes(save(tensors, metadata=metadata))
    assert deepbelief.load(path).config() == model.config()
    rewrite_metadata(path, sha256="0" * 64)
    with pytest.raises(ModelFileError, match="checksum"):
        deepbelief.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h.update(__metadata__=["not", "a", "dict"]), "not a deepbelief model file"),
        (lambda h: h["__metadata__"].update(format_version=[2]), "no valid format version"),
        (lambda h: h["__metadata__"].update(format_version="0"), "invalid format version"),
        (lambda h: h["__metadata__"].update(config=7), "malformed metadata"),
        (lambda h: h["__metadata__"].update(kind=None), "malformed metadata"),
    ],
)
def test_malformed_metadata_is_a_model_file_error(tmp_path, edit, message):
    path = saved(tmp_path)
    rewrite_header(path, edit)
    with pytest.raises(ModelFileError, match=message) as info:
        deepbelief.load(path)
    assert str(path) in str(info.value)


def test_the_outlier_detector_and_the_imputer_save_as_data(tmp_path):
    """Both exported estimators around an RBM load with the same scores, threshold and fills
    (they used to be refused by save: 'cannot save objects of type ...')."""
    from sklearn.datasets import load_digits

    from deepbelief import OutlierDetector, RBMImputer

    X = (load_digits().data[:200] > 8).astype(float)
    detector = OutlierDetector(16, n_iter=2, random_state=0).fit(X)
    detector.save(tmp_path / "detector.safetensors")
    loaded = deepbelief.load(tmp_path / "detector.safetensors")
    assert isinstance(loaded, OutlierDetector) and loaded.get_params() == detector.get_params()
    np.testing.assert_array_equal(loaded.score_samples(X), detector.score_samples(X))
    assert (loaded.offset_, loaded.trend_) == (detector.offset_, detector.trend_)
    holes = X[:20].copy()
    holes[:, :5] = np.nan
    imputer = RBMImputer(16, n_iter=2, prediction_epochs=1, random_state=0).fit(X)
    imputer.save(tmp_path / "imputer.safetensors")
    loaded = deepbelief.load(tmp_path / "imputer.safetensors", device="cpu")
    np.testing.assert_array_equal(loaded.transform(holes), imputer.transform(holes))
    assert loaded.prediction_history_ == imputer.prediction_history_
    assert loaded.visible_ == "bernoulli" and isinstance(loaded.statistics_, np.ndarray)
    RBMImputer(8).save(tmp_path / "unfitted.safetensors")  # parameters alone
    assert deepbelief.load(tmp_path / "unfitted.safetensors").get_params()["n_components"] == 8
