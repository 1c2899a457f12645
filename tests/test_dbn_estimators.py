"""DBNClassifier, DBNRegressor and DBN as scikit-learn estimators: checks, learning by stated
margins, fine-tuning from the pretrained weights, generation by class, bad labels, files.

Seeds: the stochastic tests (``@pytest.mark.stochastic``) train for seconds to minutes, so
they run with one seed, ``one_seed`` = ``DEEPBELIEF_TEST_SEED`` (default 0; the CI's second
pass uses 1); their margins were measured with seeds 0, 1 and 2 (tests/conftest.py).
"""

import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

import deepbelief
from deepbelief import DBN, DataError, DBNClassifier, DBNRegressor
from deepbelief.dbn_estimators import AUTO_UP_DOWN_EPOCHS


@parametrize_with_checks([DBNClassifier(), DBNRegressor(), DBN()])
def test_scikit_learn_compatible_with_defaults(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.3, random_state=0)


@pytest.fixture(scope="module")
def default_classifier(digits, one_seed):
    X_train, _, y_train, _ = digits
    return DBNClassifier(random_state=one_seed).fit(X_train, y_train)


@pytest.mark.stochastic
def test_classifier_defaults_reach_97_percent_on_held_out_digits(default_classifier, digits):
    _, X_test, _, y_test = digits
    score = default_classifier.score(X_test, y_test)
    # measured: 0.9815 (seeds 0, 1; native, 1 or 2 threads, and ATEN default), 0.9778 (seed 2,
    # native and avx2): 4 of 540 test digits above the margin at worst
    print(f"measured: default classifier {score:.4f}")
    assert score >= 0.97, score
    proba = default_classifier.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    assert proba.shape == (len(X_test), 10)


@pytest.mark.stochastic
def test_pretraining_beats_random_initialisation_under_the_same_budget(digits, one_seed):
    """One fine-tuning epoch, three seeds: the pretrained stack beats Glorot's initialisation
    (the fair feed-forward baseline for sigmoid units) by 10 points on average (measured:
    0.89 against 0.69)."""
    X_train, X_test, y_train, y_test = digits
    gains = []
    for seed in range(3 * one_seed, 3 * one_seed + 3):
        budget = dict(epochs=1, random_state=seed)
        pretrained = DBNClassifier(**budget).fit(X_train, y_train).score(X_test, y_test)
        random_init = (
            DBNClassifier(pretrain=False, **budget).fit(X_train, y_train).score(X_test, y_test)
        )
        assert pretrained >= 0.85, (seed, pretrained)
        gains.append(pretrained - random_init)
    # measured mean gain: 0.20 (seeds 0-2, 2 threads), 0.20 (seeds 3-5, native and ATEN
    # default), 0.18 (seeds 6-8, native and avx2); single gains 0.09 .. 0.30
    print(f"measured: pretraining gains {gains}")
    assert np.mean(gains) >= 0.10, gains


@pytest.mark.stochastic
def test_a_stack_pretrained_on_few_rows_still_fine_tunes(digits, one_seed):
    """100 rows: with the old default initial weights (std 0.01) the second layer's features
    stayed near-constant and fine-tuning ended at chance (8-25% over three seeds)."""
    X_train, X_test, y_train, y_test = digits
    few = np.concatenate([np.flatnonzero(y_train == c)[:10] for c in range(10)])
    small = DBNClassifier(epochs=50, random_state=one_seed).fit(X_train[few], y_train[few])
    score = small.score(X_test, y_test)
    # measured: 0.848 (seed 0), 0.865 (seed 1, native and ATEN default), 0.806 (seed 2)
    print(f"measured: few rows {score:.4f}")
    assert score >= 0.75, score


def test_fine_tuning_starts_from_the_pretrained_weights(digits):
    """The classifier's layers ARE the RBMs' Parameters, and before fine-tuning they hold
    exactly the weights greedy pretraining produced (an unsupervised DBN, same seed)."""
    X_train, _, y_train, _ = digits
    settings = dict(hidden_layers=(32, 16), pretrain_epochs=3, random_state=4)
    pretrained = DBN(**settings).fit(X_train)
    untuned = DBNClassifier(epochs=0, **settings).fit(X_train, y_train)
    linears = [m for m in untuned.network_ if isinstance(m, torch.nn.Linear)][:-1]
    assert len(linears) == len(untuned.dbn_.rbms) == 2
    for linear, rbm, reference in zip(linears, untuned.dbn_.rbms, pretrained.dbn_.rbms):
        assert linear.parametrizations.weight.original is rbm.weight  # shared, not copied
        assert linear.bias is rbm.hidden_bias
        assert torch.equal(rbm.weight, reference.weight)  # the pretrained values
        assert torch.equal(rbm.hidden_bias, reference.hidden_bias)
    tuned = DBNClassifier(epochs=3, **settings).fit(X_train, y_train)
    for rbm, reference in zip(tuned.dbn_.rbms, pretrained.dbn_.rbms):
        assert not torch.equal(rbm.weight, reference.weight)  # fine-tuning moved the RBMs' own


@pytest.mark.stochastic
def test_regressor_fits_a_nonlinear_function_and_multiple_outputs(one_seed):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (500, 2))
    y = np.sin(3 * X[:, 0]) + X[:, 1] ** 2
    reg = DBNRegressor(random_state=one_seed).fit(X[:400], y[:400])
    assert reg.predict(X[400:]).shape == (100,)
    r2 = reg.score(X[400:], y[400:])
    # The best linear fit scores R2 0.63 here (0.62 on the two outputs below): the margins
    # say "nonlinear". Measured R2 (seeds 0-4): ATEN_CPU_CAPABILITY=default 0.967, 0.866,
    # 0.977, 0.947, 0.980; native 0.966 (seed 0, 2 threads), 0.958, 0.983. The old margin
    # 0.9 failed for seed 1 on the default kernel (0.866); 0.8 holds with room and still
    # sits 0.17 above the linear model. Two outputs: 0.979 .. 0.996 against 0.85.
    print(f"measured: regressor R2 {r2:.4f}")
    assert r2 >= 0.8, r2
    Y = np.column_stack([y, np.cos(2 * X[:, 1]) - X[:, 0]])
    multi = DBNRegressor(random_state=one_seed).fit(X[:400], Y[:400])
    assert multi.predict(X[400:]).shape == (100, 2)
    r2 = multi.score(X[400:], Y[400:])
    print(f"measured: multi-output R2 {r2:.4f}")
    assert r2 >= 0.85, r2


@pytest.mark.stochastic
def test_class_conditional_samples_are_recognised_as_their_class(digits, one_seed):
    X_train, _, y_train, _ = digits
    judge = LogisticRegression(max_iter=3000).fit(X_train, y_train)
    gen = DBN(hidden_layers=(100, 200), pretrain_epochs=20, random_state=one_seed)
    gen.fit(X_train, y_train)
    rates = []
    for c in range(10):
        samples = gen.sample(50, label=c, gibbs_steps=200)
        assert samples.shape == (50, 64) and samples.min() >= 0 and samples.max() <= 1
        rates.append(float(np.mean(judge.predict(samples) == c)))
    # The defaults: hybrid label training, then up-down (AUTO_UP_DOWN_EPOCHS) with the top
    # RBM kept hybrid; the chains start at the class's mean features (class_features_). Before
    # up-down was in the defaults the means were 0.765 .. 0.860 and the worst classes 0.58 ..
    # 0.74. Now, measured mean / worst class: seed 0 0.990 / 0.94, seed 1 0.976 / 0.92, seed 2
    # 0.982 / 0.92 (native and ATEN_CPU_CAPABILITY=avx2 with one thread alike; seed 0 with
    # ATEN_CPU_CAPABILITY=default 0.982 / 0.96). 50 samples a class: sd 0.01 on the mean, 0.04
    # on a class's rate near 0.9. Margins 0.9 (6 sd below the lowest mean) and 0.7 (5 sd below
    # the worst class); chance is 0.1.
    assert len(gen.up_down_history_) == AUTO_UP_DOWN_EPOCHS  # up-down is in the defaults
    print(f"measured: class rates mean {np.mean(rates):.3f} min {min(rates):.3f}")
    assert np.mean(rates) >= 0.9, rates
    assert min(rates) >= 0.7, rates
    # free-running chains: the class their label units took is the class the samples show
    # (measured 0.99 / 0.98 / 0.99 agreement for seeds 0-2, every class drawn; chance 0.1)
    samples, labels = gen.sample(200, gibbs_steps=200, return_labels=True)
    assert samples.shape == (200, 64) and set(labels) <= set(gen.classes_)
    assert np.mean(judge.predict(samples) == labels) >= 0.85 and len(set(labels)) >= 8
    assert list(gen.sample(3, label=4, gibbs_steps=5, return_labels=True)[1]) == [4, 4, 4]


def test_class_features_are_each_class_mean_of_the_top_rbms_input(digits, tmp_path):
    X, y = digits[0][:300], digits[2][:300]
    gen = DBN(hidden_layers=(16, 12), pretrain_epochs=2, label_epochs=2, random_state=0)
    gen.fit(X, y)
    exact = gen.dbn_.transform(torch.as_tensor(X, dtype=torch.float32), layer=1).numpy()
    means = np.stack([exact[y == c].mean(0) for c in range(10)])
    assert gen.class_features_.shape == (10, 16)
    np.testing.assert_allclose(gen.class_features_.numpy(), means, rtol=1e-5, atol=1e-6)
    gen.save(tmp_path / "g.safetensors")
    again = deepbelief.load(tmp_path / "g.safetensors")
    assert torch.equal(again.class_features_, gen.class_features_)
    assert DBN(hidden_layers=(8,), pretrain_epochs=1).fit(X).class_features_ is None


def test_sample_by_class_starts_at_the_class_features(digits, monkeypatch, tmp_path):
    X, y = digits[0][:300], digits[2][:300] + 10  # labels that are not their indices
    gen = DBN(hidden_layers=(16, 12), pretrain_epochs=1, label_epochs=1, random_state=0)
    gen.fit(X, y)
    starts = []
    original = gen.dbn_.generate

    def spy(n, steps, labels, generator, start=None, **kw):
        starts.append(start)
        return original(n, steps, labels, generator, start, **kw)

    monkeypatch.setattr(gen.dbn_, "generate", spy)
    assert gen.sample(4, label=13, gibbs_steps=2).shape == (4, 64)
    assert torch.equal(starts[-1], gen.class_features_[3].expand(4, -1))
    gen.sample(2, gibbs_steps=2)
    assert starts[-1] is None  # unclamped: from the visible biases
    # a file written before the class features were kept samples from the biases
    monkeypatch.undo()
    gen.class_features_ = None
    gen.save(tmp_path / "old.safetensors")
    old = deepbelief.load(tmp_path / "old.safetensors")
    assert old.class_features_ is None
    assert old.sample(3, label=12, gibbs_steps=2).shape == (3, 64)


@pytest.mark.stochastic
def test_generative_label_model_classifies_by_free_energy(digits, one_seed):
    X_train, X_test, y_train, y_test = digits
    gen = DBN(hidden_layers=(100, 200), pretrain_epochs=20, random_state=one_seed)
    gen.fit(X_train, y_train)
    assert gen.score_samples(X_test).shape == (len(X_test),)
    accuracy = np.mean(gen.predict(X_test) == y_test)
    # measured with the defaults (up-down included): 0.983 (seed 0), 0.985 (seed 1), 0.976
    # (seed 2, ATEN_CPU_CAPABILITY=default); 0.952-0.959 before up-down was in them. 540 test
    # rows: sd 0.007 at 0.97; margin 0.94
    print(f"measured: generative accuracy {accuracy:.4f}")
    assert accuracy >= 0.94, accuracy
    np.testing.assert_allclose(gen.predict_proba(X_test).sum(1), 1.0)


def test_unsupervised_dbn_transforms_samples_and_ignores_continuous_y(digits):
    X_train = digits[0][:300]
    dbn = DBN(hidden_layers=(20, 10), pretrain_epochs=2, random_state=0)
    with pytest.warns(UserWarning, match="continuous y"):
        dbn.fit(X_train, np.linspace(0, 1, len(X_train)))
    assert dbn.classes_ is None and not hasattr(dbn, "predict")
    assert dbn.transform(X_train).shape == (300, 10)
    assert dbn.reconstruct(X_train[:4]).shape == (4, 64)
    assert dbn.sample(3, gibbs_steps=5).shape == (3, 64)
    with pytest.raises(ValueError, match="without labels"):
        dbn.sample(2, label=1)


def test_use_labels_false_makes_the_dbn_unsupervised_features_before_a_regressor(digits):
    """A Pipeline passes y to every step: an integer regression target used to be learned as
    hundreds of class labels; it warns, and use_labels=False learns the features alone (the
    same model as a fit without y)."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    X = digits[0][:300]
    y = np.arange(300) * 7 % 1000  # integers, each on one row
    settings = {"hidden_layers": (16,), "pretrain_epochs": 2, "random_state": 0}
    with pytest.warns(UserWarning, match="300 class labels, most of them on a single row"):
        DBN(**settings).fit(X, y)
    # scikit-learn's diabetes target: 214 values, most on 1 or 2 of 442 rows (no warning
    # before: only 84 on a single row)
    from sklearn.datasets import load_diabetes

    X_d, y_d = load_diabetes(return_X_y=True)
    with pytest.warns(UserWarning, match="214 class labels, most of them on 1 or 2 rows") as w:
        DBN(**settings, visible="gaussian").fit(X_d, y_d)
    assert [r.filename for r in w if "class labels" in str(r.message)] == [__file__]
    pipe = make_pipeline(DBN(**settings, use_labels=False), Ridge())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: y is not looked at
        pipe.fit(X, y)
    dbn = pipe[0]
    assert dbn.classes_ is None and not hasattr(dbn, "predict")
    alone = DBN(**settings).fit(X)
    np.testing.assert_array_equal(dbn.transform(X), alone.transform(X))
    with pytest.raises(ValueError, match="use_labels"):
        DBN(use_labels="yes").fit(X)
    with warnings.catch_warnings():  # ten classes of digits: no warning
        warnings.simplefilter("error")
        DBN(**settings).fit(X, digits[2][:300])


BAD_LABELS = [
    ("nan", lambda y: np.where(np.arange(len(y)) == 3, np.nan, y.astype(float)), r"NaN"),
    ("one class", lambda y: np.zeros_like(y), r"one class"),
    ("length", lambda y: y[:-1], r"inconsistent numbers of samples"),
]


@pytest.mark.parametrize("make_estimator", [lambda: DBNClassifier(epochs=1), lambda: DBN()])
@pytest.mark.parametrize(("name", "corrupt", "message"), BAD_LABELS)
def test_bad_labels_raise_data_error(make_estimator, name, corrupt, message, digits):
    X, y = digits[0][:50], digits[2][:50]
    with pytest.raises(DataError, match=message):
        make_estimator().set_params(hidden_layers=(8, 8), pretrain_epochs=1).fit(X, corrupt(y))


def test_regressor_refuses_nan_targets():
    X = np.random.default_rng(0).random((20, 3))
    y = np.arange(20.0)
    y[7] = np.nan
    with pytest.raises(DataError, match="row 7"):
        DBNRegressor(epochs=1).fit(X, y)


def test_string_labels_and_same_seed_same_predictions(digits):
    X_train, X_test, y_train, _ = digits
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    settings = dict(hidden_layers=(32,), pretrain_epochs=2, epochs=5, random_state=3)
    a = DBNClassifier(**settings).fit(X_train, names[y_train])
    b = DBNClassifier(**settings).fit(X_train, names[y_train])
    assert set(a.classes_) == set(names)
    assert np.array_equal(a.predict(X_test), b.predict(X_test))
    assert np.array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    assert a.predict(X_test[:5]).dtype.kind == "U"


@pytest.mark.parametrize(
    "make",
    [
        lambda X, y: DBNClassifier(
            hidden_layers=(16, 8), pretrain_epochs=1, epochs=2, dropout=0.1, random_state=0
        ).fit(X, y.astype(str)),
        lambda X, y: DBNRegressor(
            hidden_layers=(16,), pretrain_epochs=1, epochs=2, random_state=0
        ).fit(X, y.astype(float)),
        lambda X, y: DBN(hidden_layers=(16, 8), pretrain_epochs=1, random_state=0).fit(X, y),
        lambda X, y: DBN(
            hidden_layers=(16, 8), pretrain_epochs=1, visible="gaussian-learned", random_state=0
        ).fit(X * 5 - 1),
    ],
)
def test_save_load_round_trip_gives_identical_outputs(make, digits, tmp_path):
    X, y = digits[0][:200], digits[2][:200]
    est = make(X, y)
    path = tmp_path / "model.safetensors"
    est.save(path)
    again = deepbelief.load(path)
    assert type(again) is type(est) and again.get_params() == est.get_params()
    X_in = X * 5 - 1 if est.visible == "gaussian-learned" else X
    for method in ("predict", "predict_proba", "transform"):
        if hasattr(est, method):
            np.testing.assert_array_equal(getattr(again, method)(X_in), getattr(est, method)(X_in))
    restored = pickle.loads(pickle.dumps(est))  # scikit-learn tools pickle estimators
    if hasattr(est, "predict"):
        np.testing.assert_array_equal(restored.predict(X_in), est.predict(X_in))


def test_loaded_classifier_still_shares_its_weights(digits, tmp_path):
    X, y = digits[0][:100], digits[2][:100]
    est = DBNClassifier(hidden_layers=(8,), pretrain_epochs=1, epochs=1, random_state=0).fit(X, y)
    est.save(tmp_path / "c.safetensors")
    again = deepbelief.load(tmp_path / "c.safetensors")
    assert again.network_[0].parametrizations.weight.original is again.dbn_.rbms[0].weight


def test_warm_start_continues_fine_tuning_without_pretraining_again(digits):
    X, y = digits[0][:300], digits[2][:300]
    est = DBNClassifier(
        hidden_layers=(16,), pretrain_epochs=2, epochs=3, warm_start=True, random_state=0
    ).fit(X, y)
    dbn, weights = est.dbn_, est.dbn_.rbms[0].weight.detach().clone()
    est.fit(X, y)
    assert est.dbn_ is dbn and len(est.history_) == 6
    assert not torch.equal(est.dbn_.rbms[0].weight, weights)
    with pytest.raises(DataError, match="not seen"):
        est.fit(X, np.where(y == 1, 42, y))


def test_a_warm_start_refit_takes_the_parameters_as_they_are_then(digits):
    """It used to run the first fit's epochs and learning rate again, whatever the
    parameters said (``set_params(epochs=40)`` ran 5)."""
    X, y = digits[0][:200], digits[2][:200]
    est = DBNClassifier(hidden_layers=(16,), pretrain_epochs=1, epochs=2, early_stopping=False,
                        optimizer="sgd", warm_start=True, random_state=0).fit(X, y)  # fmt: skip
    est.set_params(epochs=5).fit(X, y)
    assert len(est.history_) == 7 and est.settings_["epochs"] == 5
    weights = est.network_[0].weight.detach().clone()
    est.set_params(epochs=1, learning_rate=1e-9).fit(X, y)
    assert est.settings_["learning_rate"] == 1e-9
    assert torch.allclose(est.network_[0].weight, weights, rtol=0, atol=1e-6)
    est.set_params(learning_rate=0.1).fit(X, y)  # the contrast: a step that shows
    assert (est.network_[0].weight - weights).abs().max() > 1e-3


@pytest.mark.parametrize(
    "change, name",
    [({"hidden_layers": (17,)}, "hidden_layers"), ({"hidden_layers": (16, 8)}, "hidden_layers"),
     ({"dtype": "float64"}, "dtype"), ({"visible": "gaussian"}, "visible")],
)  # fmt: skip
def test_a_warm_start_refit_that_changes_the_shape_is_refused_before_training(digits, change, name):
    """A warm refit keeps the fitted network: a change of its shape used to be ignored
    silently (``get_params`` then described another model than the one fitted)."""
    X, y = digits[0][:200], digits[2][:200]
    est = DBNClassifier(hidden_layers=(16,), pretrain_epochs=1, epochs=1, warm_start=True,
                        random_state=0).fit(X, y)  # fmt: skip
    network, history = est.network_, list(est.history_)
    weights = network[0].weight.detach().clone()
    with pytest.raises(ValueError, match=f"shape cannot change: {name}=.*warm_start=False"):
        est.set_params(**change).fit(X, y)
    assert est.network_ is network and est.history_ == history
    assert torch.equal(network[0].weight, weights)


def test_hidden_layers_may_be_given_alike_as_a_tuple_list_int_or_array(digits, tmp_path):
    """As scikit-learn's MLP takes its sizes; an array used to fail with NumPy's "truth value
    of an array ... is ambiguous". A warm refit sees them as the same shape."""
    X, y = digits[0][:200], digits[2][:200]
    est = DBNClassifier(hidden_layers=np.array([16, 8]), pretrain_epochs=1, epochs=1,
                        warm_start=True, random_state=0).fit(X, y)  # fmt: skip
    assert est.dbn_.rbms[0].weight.shape[1] == 16 and est.dbn_.rbms[1].weight.shape[1] == 8
    for same in ((16, 8), [16, 8], np.array([16, 8], dtype=np.int32)):
        est.set_params(hidden_layers=same).fit(X, y)
    est.save(tmp_path / "c.safetensors")
    again = deepbelief.load(tmp_path / "c.safetensors")
    assert isinstance(again.hidden_layers, np.ndarray) and again.hidden_layers.tolist() == [16, 8]
    with pytest.raises(ValueError, match="hidden_layers must be positive integers"):
        DBNClassifier(hidden_layers=np.array([16.5])).fit(X, y)


def test_a_warm_start_after_early_stopping_trains_every_row_for_the_chosen_epochs(digits):
    """The first fit refits on every row for the epochs early stopping chose; a warm refit
    continues the same way (it used to hold out a validation split and train on the rest)."""
    X, y = digits[0][:300], digits[2][:300]
    est = DBNClassifier(hidden_layers=(16,), pretrain_epochs=1, epochs=40, early_stopping=True,
                        n_iter_no_change=2, warm_start=True, random_state=0).fit(X, y)  # fmt: skip
    first = len(est.history_)
    assert first == est.best_epoch_
    est.fit(X, y)
    added = est.history_[first:]
    assert len(added) == est.best_epoch_ and not any("val_loss" in h for h in added)


@pytest.mark.stochastic
def test_early_stopping_holds_out_validation_rows(digits, one_seed):
    X, y = digits[0][:400], digits[2][:400]
    est = DBNClassifier(
        hidden_layers=(16,),
        pretrain_epochs=1,
        epochs=200,
        early_stopping=True,
        n_iter_no_change=3,
        random_state=one_seed,
    ).fit(X, y)
    search = est.validation_history_
    assert "val_loss" in search[0] and "val_accuracy" in search[0]
    # measured: stops after 37 (seed 0), 78 (seed 1), 52 (seed 2) of 200 epochs
    print(f"measured: early stopping after {len(search)}, best epoch {est.best_epoch_}")
    assert len(search) < 200
    best = min(range(len(search)), key=lambda i: search[i]["val_loss"]) + 1
    assert est.best_epoch_ == best
    # then the refit: that many epochs on all rows, the validation rows included
    assert est.n_iter_ == best and "val_loss" not in est.history_[0]


def test_layer_params_override_each_layer(digits):
    X = digits[0][:200]
    dbn = DBN(
        hidden_layers=(16, 8),
        pretrain_epochs=2,
        random_state=0,
        layer_params=[{"epochs": 4}, {"sampler": "pcd", "epochs": 1}],
    ).fit(X)
    assert [len(h) for h in dbn.pretrain_history_] == [4, 1]
    with pytest.raises(ValueError, match="layer_params"):
        DBN(hidden_layers=(4,), layer_params=[{}, {}]).fit(X)


def test_up_down_through_the_estimator_and_its_file(digits, tmp_path):
    X, y = digits[0][:300], digits[2][:300]
    gen = DBN(hidden_layers=(32, 64), pretrain_epochs=3, up_down_epochs=2, random_state=0)
    gen.fit(X, y)
    assert gen.dbn_.untied and len(gen.up_down_history_) == 2
    gen.save(tmp_path / "g.safetensors")
    again = deepbelief.load(tmp_path / "g.safetensors")
    assert again.dbn_.untied
    np.testing.assert_array_equal(again.reconstruct(X[:5]), gen.reconstruct(X[:5]))
    np.testing.assert_array_equal(again.predict(X), gen.predict(X))


@pytest.mark.stochastic
def test_one_hidden_layer_with_labels_is_the_classification_rbm(digits, one_seed):
    """``DBN(hidden_layers=(h,)).fit(X, y)``: one RBM over the input and the label units,
    trained generatively; it classifies by free energy, samples by class and scores rows."""
    X_train, X_test, y_train, y_test = digits
    rbm = DBN(hidden_layers=(200,), pretrain_epochs=20, random_state=one_seed)
    rbm.fit(X_train, y_train)
    assert rbm.dbn_.classification_rbm
    accuracy = np.mean(rbm.predict(X_test) == y_test)
    # measured: 0.964 (seed 0)
    print(f"measured: classification RBM accuracy {accuracy:.4f}")
    assert accuracy >= 0.9, accuracy
    assert rbm.sample(3, label=y_train[0], gibbs_steps=5).shape == (3, X_train.shape[1])
    assert rbm.transform(X_test[:4]).shape == (4, 200)
    assert np.isfinite(rbm.score_samples(X_test[:4])).all()


@pytest.mark.stochastic
def test_backprop_through_the_recognition_path_lowers_the_label_models_log_loss(digits, one_seed):
    """``finetune_epochs`` of backprop of -log p(y | x) through the recognition weights (the
    defaults: lr 0.1, dropout 0.2) lower the held-out log loss of the generative label model
    (measured, seeds 0-2: 0.27-0.29 -> 0.175-0.179); the recognition weights move away from
    the generative ones, and the generative model (the top RBM, the generative weights) is the
    one up-down left."""
    from sklearn.metrics import log_loss

    X_train, X_test, y_train, y_test = digits
    losses, models = {}, {}
    for epochs in (0, 10):
        model = DBN(hidden_layers=(64, 64), pretrain_epochs=5, label_epochs=5, up_down_epochs=2,
                    finetune_epochs=epochs, random_state=one_seed)  # fmt: skip
        model.fit(X_train, y_train)
        losses[epochs] = log_loss(y_test, model.predict_proba(X_test))
        models[epochs] = model
        assert len(model.finetune_history_) == epochs
    print(f"measured: {losses}")
    assert losses[10] <= losses[0] - 0.05, losses
    before, after = models[0].dbn_, models[10].dbn_
    assert after.untied
    assert not torch.equal(after.generative_weights[0], after.rbms[0].weight)
    torch.testing.assert_close(after.generative_weights[0], before.generative_weights[0])
    torch.testing.assert_close(after.rbms[-1].weight, before.rbms[-1].weight)


@pytest.mark.stochastic
def test_discriminative_and_hybrid_label_training_beat_generative_training(digits, one_seed):
    """The classification RBM trained on -log p(y | x) (alone or with the generative
    gradient) classifies better than the generatively trained one it starts from."""
    X_train, X_test, y_train, y_test = digits
    accuracy = {}
    for mode in ("generative", "discriminative", "hybrid"):
        model = DBN(hidden_layers=(200,), pretrain_epochs=20, label_training=mode,
                    label_epochs=10, random_state=one_seed)  # fmt: skip
        model.fit(X_train, y_train)
        accuracy[mode] = np.mean(model.predict(X_test) == y_test)
        assert len(model.label_history_) == (0 if mode == "generative" else 10)
    print(f"measured: {accuracy}")
    assert accuracy["discriminative"] >= accuracy["generative"] + 0.005, accuracy
    assert accuracy["hybrid"] >= accuracy["generative"] + 0.005, accuracy


def test_finetune_shift_translates_image_rows_and_refuses_other_rows(tmp_path):
    """``finetune_shift`` needs rows that are images: a square grey image by default, else
    ``image_shape``; other rows are refused before any training, in the parameter's words.
    The shape is kept in the model file."""
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    quick = dict(hidden_layers=(8, 6), pretrain_epochs=1, label_epochs=1, up_down_epochs=0,
                 finetune_epochs=1, finetune_shift=1, random_state=0)  # fmt: skip
    with pytest.raises(DataError, match="rows of 10 features are no square image"):
        DBN(**quick).fit(rng.random((40, 10)), y)
    with pytest.raises(DataError, match=r"image_shape \(1, 3, 3\) holds 9 values"):
        DBN(**quick, image_shape=(3, 3)).fit(rng.random((40, 10)), y)
    model = DBN(**quick, image_shape=(2, 5)).fit(rng.random((40, 10)), y)
    assert model.image_shape_ == (1, 2, 5) and len(model.finetune_history_) == 1
    square = DBN(**quick).fit(rng.random((40, 9)), y)
    assert square.image_shape_ == (1, 3, 3)
    square.save(tmp_path / "square.safetensors")
    loaded = deepbelief.load(tmp_path / "square.safetensors")
    assert loaded.image_shape_ == (1, 3, 3) and loaded.finetune_history_ == square.finetune_history_
    assert not hasattr(DBN(**{**quick, "finetune_shift": 0}).fit(rng.random((40, 10)), y),
                       "image_shape_")  # fmt: skip


@pytest.mark.filterwarnings("ignore::deepbelief.UndertrainedWarning")
@pytest.mark.parametrize("maker", [DBNClassifier, DBNRegressor, DBN])
def test_numpy_generators_seed_the_dbn_estimators_as_scikit_learn_does(maker):
    """``random_state`` may be a RandomState or a Generator (a seed is drawn from it), as for
    ``RBM``; anything else is refused naming it."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:100] / 16, y[:100]
    kw = dict(hidden_layers=(4,), pretrain_epochs=1)
    if maker is not DBN:
        kw["epochs"] = 1
    outputs = []
    for state in (np.random.RandomState(3), np.random.RandomState(3), np.random.default_rng(3)):
        model = maker(random_state=state, **kw).fit(X, y)
        outputs.append(model.transform(X) if maker is DBN else model.predict(X))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    for bad in ("a", 1.5, True):
        with pytest.raises(ValueError, match="random_state must be None, an int"):
            maker(random_state=bad, **kw).fit(X, y)


@pytest.mark.filterwarnings("ignore::deepbelief.UndertrainedWarning")
def test_a_fit_that_fails_part_way_leaves_the_estimator_unfitted_not_half_fitted():
    """A divergence in pretraining leaves a classifier without its network: not fitted (it
    used to pass check_is_fitted and fail in predict with an AttributeError); a refit whose
    data is refused forgets the earlier fit rather than mixing the two."""
    from sklearn.exceptions import NotFittedError

    from deepbelief.errors import DivergenceError

    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    clf = DBNClassifier(hidden_layers=(8,), pretrain_epochs=2, epochs=1, random_state=0)
    with pytest.raises(DivergenceError):
        clf.set_params(pretrain_learning_rate=1e8).fit(X, y)
    with pytest.raises(NotFittedError):
        clf.predict(X)
    clf.set_params(pretrain_learning_rate="auto").fit(X, y)
    assert clf.predict(X).shape == (200,)
    with pytest.raises(ValueError, match="class"):
        clf.fit(X[:, :10], np.zeros(200))  # one class: refused
    with pytest.raises(NotFittedError):
        clf.predict(X[:, :10])
    dbn = DBN(hidden_layers=(4,), pretrain_epochs=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError):
        dbn.fit(X[:, :10], np.full(200, np.inf))
    with pytest.raises(NotFittedError):
        dbn.transform(X[:, :10])


def test_sample_refuses_bad_counts_and_labels_naming_them():
    X, y = load_digits(return_X_y=True)
    X, y = X[:100] / 16, y[:100]
    dbn = DBN(hidden_layers=(4,), pretrain_epochs=1, label_epochs=1, random_state=0).fit(X, y)
    rbm = deepbelief.RBM(4, n_iter=1, random_state=0).fit(X)
    for call, message in [
        (lambda: dbn.sample(-1), "n_samples must be an integer >= 1, got -1"),
        (lambda: dbn.sample(2.7), "n_samples must be an integer >= 1, got 2.7"),
        (lambda: dbn.sample("2"), "n_samples must be an integer >= 1, got '2'"),
        (lambda: dbn.sample(2, gibbs_steps=-5), "gibbs_steps must be an integer >= 0, got -5"),
        (lambda: dbn.sample(2, label=[1, 2]), r"unknown label \[1, 2\]; classes are \[0, 1,"),
        (lambda: dbn.sample(2, label=True), "unknown label True"),
        (lambda: rbm.sample(-1), "n_samples must be an integer >= 1, got -1"),
        (lambda: rbm.sample(2, n_steps=-1), "n_steps must be an integer >= 0, got -1"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
    assert dbn.sample(np.int64(2), label=np.int64(3), gibbs_steps=0).shape == (2, 64)
    assert rbm.sample(2.0, n_steps=0).shape == (2, 64)


@pytest.mark.parametrize(
    ("estimator", "name", "value"),
    [
        (DBNClassifier, "optimizer", "adamw"),  # KeyError: 'adamw'
        (DBNRegressor, "optimizer", "Adam"),
        (DBNClassifier, "optimizer", None),
        (DBNClassifier, "optimizer", ["sgd"]),  # unhashable
        (DBNClassifier, "epochs", "10"),  # TypeError: unsupported operand type(s) for //
        (DBNRegressor, "epochs", None),
        (DBNClassifier, "hidden_layers", 1.5),  # 'float' object is not iterable
        (DBN, "hidden_layers", "256"),
        (DBN, "layer_params", 3),
        (DBNClassifier, "dtype", ["float32"]),
        (DBNClassifier, "preset", ["lee2009"]),
        (deepbelief.RBM, "dtype", {"a": 1}),
    ],
)
def test_a_parameter_of_the_wrong_type_is_named_in_a_value_error(estimator, name, value):
    """A bare KeyError or TypeError from deep inside the library used to name nothing."""
    X, y = load_digits(return_X_y=True)
    with pytest.raises(ValueError, match=name):
        estimator(**{name: value}).fit(X[:50] / 16, y[:50])


@pytest.mark.parametrize(
    ("visible", "layers", "hidden"),
    [
        ("gaussian", (8,), "gaussian"),
        ("bernoulli", (8, 8), "gaussian"),  # the first layer's Gaussian units feed the top
        ("bernoulli", (8, 8), ["relu", "gaussian"]),
    ],
)
def test_a_label_model_of_linear_units_in_its_top_rbm_is_refused_before_training(
    visible, layers, hidden
):
    """Gaussian hidden units over Gaussian (or ReLU) visible units in the top RBM: a joint
    Gaussian, proper only while the weights stay small. Label training diverged on iris and
    digits (DivergenceError after pretraining, or nan chains)."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:200] / 16, y[:200]
    dbn = DBN(hidden_layers=layers, visible=visible, hidden=hidden, random_state=0)
    with pytest.raises(ValueError, match="Gaussian hidden units in the top RBM") as refused:
        dbn.fit(X, y)
    assert "bernoulli or relu hidden units" in str(refused.value)
    assert not hasattr(dbn, "pretrain_history_")  # refused before the pretraining
    # proper tops are trained: binary visible units under Gaussian hidden ones, and Gaussian
    # hidden units below a Bernoulli top
    DBN(hidden_layers=(8,), hidden="gaussian", pretrain_epochs=1, label_epochs=1).fit(X, y)
    DBN(hidden_layers=(8, 8), hidden=["gaussian", "bernoulli"], pretrain_epochs=1,
        label_epochs=1, up_down_epochs=1).fit(X, y)  # fmt: skip


def test_an_unlabelled_dbn_of_linear_units_learns_features_but_refuses_diverged_samples():
    X = np.random.default_rng(0).normal(size=(100, 6))
    dbn = DBN(
        hidden_layers=(4,), visible="gaussian", hidden="gaussian", pretrain_epochs=2, random_state=0
    ).fit(X)  # fmt: skip (no chains in this fit: no labels, no up-down)
    assert np.isfinite(dbn.transform(X)).all()
    with torch.no_grad():  # weights whose largest singular value is 3: an improper joint
        weight = dbn.dbn_.rbms[-1].weight
        weight.mul_(3 / torch.linalg.matrix_norm(weight, ord=2))
    with pytest.raises(deepbelief.DivergenceError, match="the samples are not finite"):
        dbn.sample(4, gibbs_steps=2000)


@pytest.mark.filterwarnings("ignore::deepbelief.UndertrainedWarning")
@pytest.mark.parametrize(
    "labels",
    [np.int8, np.uint16, bool, object, "U", "category"],
    ids=["int8", "uint16", "bool", "object", "str", "category"],
)
def test_saved_classes_keep_their_dtype(labels, tmp_path):
    import pandas as pd

    X, digits = load_digits(return_X_y=True)
    X, digits = X[:60] / 16, digits[:60] % 2
    if labels == "category":
        y = pd.Series(np.array(["even", "odd"])[digits], dtype="category")
    elif labels in (object, "U"):
        y = np.array(["even", "odd"], dtype=labels)[digits]
    else:
        y = digits.astype(labels)
    for model in (
        DBNClassifier(hidden_layers=(4,), pretrain_epochs=1, epochs=1, random_state=0),
        DBN(hidden_layers=(4,), pretrain_epochs=1, label_epochs=1, random_state=0),
    ):
        model.fit(X, y)
        model.save(tmp_path / "model.safetensors")
        loaded = deepbelief.load(tmp_path / "model.safetensors")
        assert loaded.classes_.dtype == model.classes_.dtype
        np.testing.assert_array_equal(loaded.classes_, model.classes_)
        assert loaded.predict(X).dtype == model.predict(X).dtype


def test_one_class_is_refused_naming_the_label_as_written():
    X = np.random.default_rng(0).random((10, 3))
    with pytest.raises(DataError, match=r"y has only one class \(0\.0\); a classifier needs"):
        DBNClassifier().fit(X, np.zeros(10))
    with pytest.raises(DataError, match=r"y has only one class \('a'\)"):
        DBNClassifier().fit(X, np.array(["a"] * 10))


def test_text_in_a_regression_target_and_a_missing_text_label_are_named_by_row():
    X = np.random.default_rng(0).random((6, 3))
    text = np.array(["1", "2", "x", "4", "5", "6"], dtype=object)
    with pytest.raises(DataError, match=r"y must hold numbers for a regressor; row 2 .* 'x'"):
        DBNRegressor().fit(X, text)
    labels = np.array(["a", "b", None, "a", "b", "a"], dtype=object)
    with pytest.raises(DataError, match=r"y is missing at row 2 \(counting from 0\)"):
        DBNClassifier().fit(X, labels)


def test_predictions_reuse_their_float64_copy_until_the_parameters_change(digits, monkeypatch):
    """Every predict, transform or score used to deep-copy the whole model into float64 (a
    row at a time, the copy cost more than the prediction). The copy is now kept while the
    parameters stay as they are, and made again when they change in place, when the model
    moves to another dtype, or when it is fitted again."""
    import copy as copy_module

    X_train, X_test, y_train, _ = digits
    clf = DBNClassifier(hidden_layers=(16,), pretrain_epochs=1, epochs=2, random_state=0)
    clf.fit(X_train[:200], y_train[:200])
    gen = DBN(hidden_layers=(8,), pretrain_epochs=1, random_state=0).fit(X_train[:200])
    first = clf.predict_proba(X_test[:5])
    features = gen.transform(X_test[:5])
    copies = []
    deepcopy = copy_module.deepcopy

    def counted(obj, memo=None):
        if isinstance(obj, torch.nn.Module):
            copies.append(type(obj).__name__)
        return deepcopy(obj, memo)

    monkeypatch.setattr(copy_module, "deepcopy", counted)
    for row in X_test[:5]:
        clf.predict_proba(row[None])
        gen.transform(row[None])
    assert copies == []
    np.testing.assert_array_equal(clf.predict_proba(X_test[:5]), first)
    np.testing.assert_array_equal(gen.transform(X_test[:5]), features)
    with torch.no_grad():  # the fine-tuned network shares the DBN's Parameters
        clf.dbn_.rbms[0].hidden_bias.add_(5.0)
        gen.dbn_.rbms[0].hidden_bias.add_(5.0)
    changed = clf.predict_proba(X_test[:5])
    assert np.abs(changed - first).max() > 1e-3
    assert np.abs(gen.transform(X_test[:5]) - features).max() > 1e-3
    assert len(copies) == 2
    clf.dbn_.double()  # another dtype: new tensors
    np.testing.assert_allclose(clf.predict_proba(X_test[:5]), changed, rtol=0, atol=1e-12)
    assert len(copies) == 3
    monkeypatch.undo()
    clf.fit(X_train[:200], y_train[:200])  # fitted again: another network
    np.testing.assert_array_equal(clf.predict_proba(X_test[:5]), first)


def _independent_columns(n, seed=0):
    """Two independent normal columns min-max scaled to [0, 1]; the class: x1 + x2 > 0."""
    X = np.random.default_rng(seed).normal(size=(n, 2))
    y = (X.sum(axis=1) > 0).astype(int)
    return (X - X.min(0)) / (X.max(0) - X.min(0)), y


def test_layers_pretrained_into_constant_features_restart_from_random_weights(monkeypatch):
    """Bernoulli units on independent columns learn nothing beyond their means: the second
    RBM switched its units off and the classifier stayed at chance (0.50)."""
    import deepbelief.dbn_estimators as module

    X, y = _independent_columns(900)
    quick = dict(pretrain_epochs=10, epochs=100, early_stopping=False, random_state=0)
    with pytest.warns(deepbelief.UndertrainedWarning, match="RBM 2's pretrained features are "
                      r"constant .*\(visible='gaussian'; --visible gaussian\)"):  # fmt: skip
        restarted = DBNClassifier(**quick).fit(X[:600], y[:600])
    assert restarted.score(X[600:], y[600:]) >= 0.85
    monkeypatch.setattr(module, "CONSTANT_FEATURES", 0.0)  # the check off: the old behaviour
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", deepbelief.UndertrainedWarning)
        stuck = DBNClassifier(**quick).fit(X[:600], y[:600])
    assert stuck.score(X[600:], y[600:]) <= 0.65


def test_first_constant_layer_finds_the_first_layer_whose_features_do_not_vary():
    from deepbelief.dbn_estimators import _first_constant_layer
    from deepbelief.nn import DBN as DBNModule

    seeded = torch.Generator().manual_seed(0)
    dbn = DBNModule.from_sizes([4, 6, 5, 3], generator=seeded, weight_std=1.0)
    rows = torch.rand(50, 4, generator=torch.Generator().manual_seed(1))
    assert _first_constant_layer(dbn, rows) is None
    with torch.no_grad():
        dbn.rbms[1].hidden_bias.fill_(-30.0)  # every unit off, whatever its input
    assert _first_constant_layer(dbn, rows) == 1
    before = dbn.rbms[0].weight.clone()
    dbn.random_init_(torch.Generator().manual_seed(2), start=1)
    assert torch.equal(dbn.rbms[0].weight, before)  # below the start: as pretrained
    assert _first_constant_layer(dbn, rows) is None and dbn.rbms[1].hidden_bias.eq(0).all()


def test_structured_data_keeps_every_pretrained_layer(digits):
    X_train, _, y_train, _ = digits
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*constant over the training rows")
        DBNClassifier(hidden_layers=(64, 64), pretrain_epochs=5, epochs=2, random_state=0).fit(
            X_train[:500], y_train[:500]
        )


def test_an_unsupervised_dbn_has_no_labels_to_return(digits):
    X = digits[0][:100]
    dbn = DBN(hidden_layers=(8,), pretrain_epochs=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="fitted without labels"):
        dbn.sample(2, return_labels=True)


def test_an_unsupervised_dbn_says_when_its_features_carry_nothing(digits):
    X, _ = _independent_columns(600)
    with pytest.warns(deepbelief.UndertrainedWarning, match="RBM 2's pretrained features are "
                      "constant .* carry nothing"):  # fmt: skip
        DBN(hidden_layers=(64, 64), pretrain_epochs=10, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", ".*constant over the training rows")
        DBN(hidden_layers=(64, 64), pretrain_epochs=5, random_state=0).fit(digits[0][:500])
