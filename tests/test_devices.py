"""Every path on every device this machine has: the CPU always, a CUDA GPU when
there is one. Pretraining, fine-tuning, sampling, AIS, the applications and the command
line run where ``device`` says, leave their tensors there, and agree with the same model moved
to the CPU; a model written on one device loads on another (``deepbelief.load(path,
device=...)``). On a machine without a GPU only the CPU cases run (the GPU ones are reported as
skipped with the reason), so the test code itself is exercised by every CI run;
``benchmarks/gpu_check.sh`` runs this file on a GPU machine."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import deepbelief
from deepbelief import DBN, DBNClassifier, DBNRegressor, OutlierDetector, RBMImputer
from deepbelief import RBM as RBMEstimator
from deepbelief.applications import denoise
from deepbelief.cli import main
from deepbelief.evaluation import ais_log_partition, exact_log_partition
from deepbelief.model_dir import load_model
from deepbelief.nn import RBM
from deepbelief.training import RBMTrainer, make_generator

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]


@pytest.fixture(scope="module")
def digits():
    """300 of scikit-learn's digits scaled to [0, 1], and their labels."""
    X, y = load_digits(return_X_y=True)
    return (X[:300] / 16.0).astype(np.float32), y[:300]


def on(device: str, tensor: torch.Tensor) -> bool:
    return tensor.device.type == device


@pytest.mark.parametrize("device", DEVICES)
def test_the_rbm_estimator_trains_samples_and_scores_on_the_device(device, digits, tmp_path):
    X, _ = digits
    rbm = RBMEstimator(16, n_iter=3, batch_size=20, random_state=0, device=device).fit(X)
    assert on(device, rbm.model_.weight)
    features = rbm.transform(X)
    assert isinstance(features, np.ndarray) and features.shape == (300, 16)
    assert rbm.sample(4, n_steps=5).shape == (4, 64)
    assert np.isfinite(rbm.score_samples(X[:20])).all()
    assert np.isfinite(rbm.log_likelihood(X[:20], n_runs=8, betas=200))
    path = tmp_path / "rbm.safetensors"
    rbm.save(path)
    same = deepbelief.load(path)
    assert on(device, same.model_.weight)
    np.testing.assert_array_equal(same.transform(X), features)
    on_cpu = deepbelief.load(path, device="cpu")
    assert on_cpu.model_.weight.device.type == "cpu" and on_cpu.device == "cpu"
    np.testing.assert_allclose(on_cpu.transform(X), features, atol=1e-5)


@pytest.mark.filterwarnings("ignore::deepbelief.UndertrainedWarning")
@pytest.mark.parametrize("device", DEVICES)
def test_a_cpu_model_loads_onto_the_device(device, digits, tmp_path):
    X, y = digits
    clf = DBNClassifier(
        hidden_layers=(16,), pretrain_epochs=1, epochs=2, random_state=0, device="cpu"
    ).fit(X, y)
    path = tmp_path / "clf.safetensors"
    clf.save(path)
    moved = deepbelief.load(path, device=device)
    assert on(device, moved.dbn_.rbms[0].weight)
    assert on(device, next(moved.network_.parameters()))
    np.testing.assert_allclose(moved.predict_proba(X), clf.predict_proba(X), atol=1e-5)


@pytest.mark.stochastic
@pytest.mark.parametrize("device", DEVICES)
def test_the_classifier_pretrains_fine_tunes_and_predicts_on_the_device(
    device, digits, tmp_path, one_seed
):
    X, y = digits
    clf = DBNClassifier(
        hidden_layers=(32,), pretrain_epochs=2, epochs=10, random_state=one_seed, device=device
    ).fit(X, y)
    assert on(device, clf.dbn_.rbms[0].weight)
    assert all(on(device, p) for p in clf.network_.parameters())
    proba = clf.predict_proba(X)
    assert proba.shape == (300, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (clf.predict(X) == y).mean() > 0.5  # ten classes: chance is 0.1
    path = tmp_path / "clf.safetensors"
    clf.save(path)
    np.testing.assert_allclose(
        deepbelief.load(path, device="cpu").predict_proba(X), proba, atol=1e-5
    )


@pytest.mark.parametrize("device", DEVICES)
def test_mixed_precision_fine_tuning_runs_on_the_device(device, digits):
    X, y = digits
    clf = DBNClassifier(
        hidden_layers=(32,),
        pretrain_epochs=1,
        epochs=5,
        mixed_precision=True,
        random_state=0,
        device=device,
    ).fit(X, y)
    assert clf.network_[0].weight.dtype == torch.float32  # autocast: the weights stay float32
    assert np.isfinite(clf.predict_proba(X)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_the_regressor_runs_on_the_device(device, digits):
    X, y = digits
    reg = DBNRegressor(
        hidden_layers=(16,), pretrain_epochs=1, epochs=5, random_state=0, device=device
    ).fit(X, y.astype(np.float32))
    assert on(device, next(reg.network_.parameters()))
    assert np.isfinite(reg.predict(X)).all()


@pytest.mark.parametrize("device", DEVICES)
def test_the_generative_dbn_samples_by_class_and_bounds_its_likelihood_on_the_device(
    device, digits
):
    X, y = digits
    dbn = DBN(
        hidden_layers=(16, 16), pretrain_epochs=1, label_epochs=1, random_state=0, device=device
    ).fit(X, y)
    assert all(on(device, p) for p in dbn.dbn_.parameters())
    assert on(device, dbn.class_features_)
    samples = dbn.sample(5, label=3, gibbs_steps=10)
    assert samples.shape == (5, 64) and ((samples >= 0) & (samples <= 1)).all()
    assert dbn.transform(X).shape == (300, 16)
    assert np.isfinite(dbn.log_likelihood_bound(X[:10], n_samples=2, n_runs=4, betas=100))


@pytest.mark.stochastic
@pytest.mark.parametrize("device", DEVICES)
def test_ais_on_the_device_finds_the_exact_log_partition(device, seed):
    """A 12-16 RBM (4096 visible states): AIS with 200 runs lands within 0.05 nats of the sum
    over every state, and the estimate stays on the host as a float."""
    gen = make_generator(seed, torch.device(device))
    model = RBM(12, 16, weight_std=0.5, generator=gen, device=device)
    exact = exact_log_partition(model.to("cpu").double())
    model = model.to(device).float()
    estimate = ais_log_partition(model, n_runs=200, betas=2000, generator=gen)
    assert abs(float(estimate) - exact) < 0.05, (float(estimate), exact)


@pytest.mark.parametrize("device", DEVICES)
def test_the_fused_cd_step_on_the_device_is_torchs_sgd(device):
    """The trainer's fused update of binary units (gradient into the momentum buffers in the
    products) against the closed-form gradients and torch's own SGD step, on the device, from
    the same draws."""
    dev = torch.device(device)
    data = (torch.rand(40, 9, generator=make_generator(1, dev), device=dev) < 0.4).float()
    models = []
    for fused in (True, False):
        gen = make_generator(0, dev)
        model = RBM(9, 6, weight_std=0.3, generator=gen, device=dev)
        trainer = RBMTrainer(model, "cd", epochs=3, batch_size=10, monitor_rows=0, generator=gen)
        trainer._fused = fused
        trainer.fit(data)
        models.append(model)
    torch.testing.assert_close(models[0].weight, models[1].weight, atol=1e-5, rtol=1e-4)
    assert on(device, models[0].weight)


@pytest.mark.parametrize("device", DEVICES)
def test_the_applications_run_on_the_device(device, digits):
    X, _ = digits
    binary = (X > 0.5).astype(np.float32)
    detector = OutlierDetector(16, n_iter=2, random_state=0, device=device).fit(binary)
    assert on(device, detector.rbm_.model_.weight)
    assert np.isfinite(detector.score_samples(binary[:20])).all()
    holes = binary[:20].copy()
    holes[:, :8] = np.nan
    imputer = RBMImputer(16, n_iter=2, prediction_epochs=1, random_state=0, device=device)
    filled = imputer.fit(binary).transform(holes)
    assert on(device, imputer.rbm_.model_.weight)
    assert not np.isnan(filled).any() and np.array_equal(filled[:, 8:], binary[:20, 8:])
    rbm = RBMEstimator(16, n_iter=2, random_state=0, device=device).fit(binary)
    clean = denoise(rbm, binary[:20], noise="salt-and-pepper", noise_level=0.1, random_state=0)
    assert clean.shape == (20, 64) and np.isfinite(clean).all()


@pytest.mark.stochastic
@pytest.mark.parametrize("device", DEVICES)
def test_the_command_trains_and_predicts_on_the_device(device, digits, tmp_path, capsys, one_seed):
    X, y = digits
    np.savez(tmp_path / "digits.npz", X=X, y=y)
    model = tmp_path / "model"
    argv = ["train", tmp_path / "digits.npz", "-o", model, "--device", device, "--quiet"]
    argv += ["--layers", "16", "--pretrain-epochs", "2", "--epochs", "20", "--seed", one_seed]
    assert main([str(a) for a in argv]) == 0
    assert json.loads((model / "run.json").read_text())["device"] == device
    assert on(device, load_model(model)[0].dbn_.rbms[0].weight)
    assert main(["evaluate", str(model), str(tmp_path / "digits.npz"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] > 0.5  # ten classes: chance is 0.1


def test_a_module_and_a_checkpoint_load_onto_a_named_device(tmp_path):
    gen = make_generator(0, torch.device("cpu"))
    module = RBM(6, 4, generator=gen)
    deepbelief.save(module, tmp_path / "rbm.safetensors")
    loaded = deepbelief.load(tmp_path / "rbm.safetensors", device="cpu")
    assert isinstance(loaded, RBM) and torch.equal(loaded.weight, module.weight)
    trainer = RBMTrainer(module, "pcd", epochs=1, batch_size=5, monitor_rows=0, generator=gen)
    trainer.fit((torch.rand(10, 6, generator=gen) < 0.5).float())
    trainer.save_checkpoint(tmp_path / "ckpt.safetensors")
    back = deepbelief.load(tmp_path / "ckpt.safetensors", device="cpu")
    assert isinstance(back, RBMTrainer) and back.epoch == 1
    assert torch.equal(back.model.weight, module.weight)


def test_loading_onto_a_device_this_machine_lacks_is_refused_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="device 'cuda': not available"):
        deepbelief.load(tmp_path / "no such file", device="cuda")
    with pytest.raises(ValueError, match="device 'gpu': not a device"):
        deepbelief.load(tmp_path / "no such file", device="gpu")


@pytest.mark.parametrize("device", DEVICES)
def test_fine_tuning_with_weight_averaging_resumes_on_the_device(device, digits, tmp_path):
    """A checkpoint is read onto the CPU; its averaged and best weights used to stay there, and
    the next epoch's running mean then mixed CPU and GPU tensors."""
    from torch import nn

    from deepbelief.finetune import finetune
    from deepbelief.io import read_file, write_file

    X, y = digits
    X, y = torch.as_tensor(X, device=device), torch.as_tensor(y, device=device)

    def network():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10)).to(device)

    def run(net, **kw):
        return finetune(net, X, y, "classification", epochs=4, batch_size=50, average_epochs=3,
                        generator=make_generator(0, torch.device(device)), **kw)  # fmt: skip

    straight = network()
    run(straight)

    class StopAfterTwo:
        def on_epoch_end(self, state, metrics):
            state.stop_training = state.epoch == 2

    first = network()
    state = run(first, callbacks=[StopAfterTwo()]).state_dict()
    write_file(tmp_path / "ckpt.safetensors", "checkpoint", state)
    _, saved = read_file(tmp_path / "ckpt.safetensors")
    assert all(t.device.type == "cpu" for t in saved["rule"]["averaged"].values())
    resumed = network()
    result = run(resumed, resume=saved)
    assert result.n_averaged == 3 and all(on(device, t) for t in result.averaged.values())
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_mps_is_refused_in_words():
    from deepbelief.loop import device_problem

    assert "no float64" in device_problem("mps")
    with pytest.raises(ValueError, match="device 'mps': not supported: Apple's MPS has no"):
        DBNClassifier(device="mps").fit(np.zeros((4, 2)), [0, 1, 0, 1])


@pytest.mark.parametrize(
    ("capability", "native"), [((7, 0), False), ((7, 5), False), ((8, 0), True)]
)
def test_bfloat16_counts_as_native_from_ampere_on(capability, native, monkeypatch):
    """``torch.cuda.is_bf16_supported()`` also answers True on cards that emulate bfloat16
    (V100, T4), where ``mixed_precision="auto"`` would be slower."""
    from deepbelief.training import native_bfloat16

    asked = []
    monkeypatch.setattr(
        torch.cuda, "get_device_capability", lambda d=None: asked.append(d) or capability
    )
    assert native_bfloat16("cuda:1") is native
    assert asked == [torch.device("cuda:1")]  # the device given, not the current one


def test_training_larger_than_the_gpus_free_memory_is_refused_before_work(monkeypatch):
    from deepbelief.errors import UsageError
    from deepbelief.resources import check_training_memory

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda d=None: (10**8, 8 * 10**9))
    layers, rows = [2000, 2000], 60000
    check_training_memory(layers, 784, rows, torch.device("cpu"))  # the machine's memory
    with pytest.raises(UsageError, match=r"of GPU memory; cuda:0 has 0\.1 GB free"):
        check_training_memory(layers, 784, rows, torch.device("cuda:0"))


@pytest.mark.parametrize("device", DEVICES)
def test_parallel_tempering_keeps_its_chains_and_counters_on_the_device(device, digits, tmp_path):
    """PT's swap counters used to be copied to the CPU after every round (a GPU
    synchronisation per update); they follow the chains now, and a checkpoint (read onto the
    CPU) resumes on the device to the same weights as a straight run."""
    from deepbelief.samplers import PT
    from deepbelief.training import Checkpoint

    X = torch.as_tensor(digits[0][:120], device=device)

    def trainer(epochs, callbacks=()):
        generator = make_generator(0, torch.device(device))
        model = RBM(64, 16, generator=generator, device=device)
        sampler = PT(k=1, n_chains=10, n_temperatures=4)
        return RBMTrainer(model, sampler, epochs=epochs, batch_size=10, generator=generator,
                          monitor_rows=0, callbacks=list(callbacks))  # fmt: skip

    straight = trainer(2).fit(X)
    assert on(device, straight.sampler.chains) and on(device, straight.sampler.swap_accepts)
    assert straight.sampler.swap_attempts.sum() > 0

    class StopAfterOne:
        def on_epoch_end(self, loop, metrics):
            loop.stop_training = True

    path = tmp_path / "pt.safetensors"
    trainer(2, [Checkpoint(path), StopAfterOne()]).fit(X)
    resumed = RBMTrainer.from_checkpoint(path, device=device)
    resumed.fit(X)
    assert on(device, resumed.sampler.swap_accepts)
    torch.testing.assert_close(resumed.model.weight, straight.model.weight, rtol=0, atol=0)
    torch.testing.assert_close(resumed.sampler.swap_rates, straight.sampler.swap_rates)
