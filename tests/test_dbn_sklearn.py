"""DBNClassifier, DBNRegressor and DBN under scikit-learn's conventions: scipy.sparse input,
feature names and pandas output, and the clipping of out-of-range values at predict time
(so that a MinMaxScaler fitted on a training split works on the test split)."""

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import deepbelief.estimators
from deepbelief import DBN, DataError, DBNClassifier, DBNRegressor
from deepbelief.estimators import ClippedInputWarning

#: Fine-tuning for two epochs may end barely below where it started: not what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore::deepbelief.errors.UndertrainedWarning")

#: Small explicit settings: every test here trains in well under a second.
SMALL = dict(pretrain_epochs=1, pretrain_batch_size=20, epochs=2, batch_size=20)
SUPERVISED = dict(hidden_layers=(16,), **SMALL, early_stopping=False, random_state=0)
UNSUPERVISED = dict(pretrain_epochs=1, pretrain_batch_size=20, random_state=0)


@pytest.fixture(scope="module")
def digits():
    """200 digits scaled into [0, 1]: about half the values are zero (naturally sparse)."""
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16.0, y[:200]


def clipping_warnings(caught) -> list:
    return [w for w in caught if issubclass(w.category, ClippedInputWarning)]


def call_counting_warnings(method, *args):
    """``method(*args)`` and the ClippedInputWarnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = method(*args)
    return result, clipping_warnings(caught)


# ----------------------------------------------------------------------- pipelines
@pytest.mark.stochastic
def test_minmax_scaler_pipeline_cross_validates_with_clipped_test_splits(one_seed):
    X, y = load_digits(return_X_y=True)
    classifier = DBNClassifier(
        hidden_layers=(32,),
        pretrain_epochs=2,
        epochs=5,
        early_stopping=False,
        random_state=one_seed,
    )
    pipeline = make_pipeline(MinMaxScaler(), classifier)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = cross_val_score(pipeline, X, y, cv=5, error_score="raise")
    assert scores.shape == (5,)
    assert np.isfinite(scores).all(), scores
    # measured: 0.845 to 0.942 per split (seeds 0, 1, 2); chance is 0.1
    assert scores.min() >= 0.6, scores
    # each test split has pixels outside the training split's range: the scaler maps them
    # outside [0, 1] and the classifier clips them (one warning per predict call)
    clipped = clipping_warnings(caught)
    assert len(clipped) >= 1
    assert all("clipped into [0, 1]" in str(w.message) for w in clipped)


# ----------------------------------------------------------------------- sparse input
def test_the_estimators_declare_sparse_input():
    for estimator in (DBNClassifier(), DBNRegressor(), DBN()):
        assert estimator.__sklearn_tags__().input_tags.sparse


SPARSE_FORMATS = [sp.csr_matrix, sp.csc_matrix, sp.coo_array]


@pytest.mark.parametrize("sparse", SPARSE_FORMATS, ids=lambda f: f.__name__)
def test_classifier_fitted_on_sparse_input_equals_the_dense_fit(digits, sparse):
    X, y = digits
    dense = DBNClassifier(**SUPERVISED).fit(X, y)
    sparse_fit = DBNClassifier(**SUPERVISED).fit(sparse(X), y)
    for a, b in zip(dense.network_.parameters(), sparse_fit.network_.parameters()):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    expected = dense.predict_proba(X)
    np.testing.assert_array_equal(sparse_fit.predict_proba(sparse(X)), expected)
    np.testing.assert_array_equal(dense.predict_proba(sparse(X)), expected)
    np.testing.assert_array_equal(dense.predict(sparse(X)), dense.predict(X))
    assert dense.score(sparse(X), y) == dense.score(X, y)


@pytest.mark.parametrize("sparse", SPARSE_FORMATS, ids=lambda f: f.__name__)
def test_regressor_fitted_on_sparse_input_equals_the_dense_fit(digits, sparse):
    X, labels = digits
    y = np.column_stack([labels / 9.0, X[:, 20:30].mean(1)])  # two continuous targets
    dense = DBNRegressor(**SUPERVISED).fit(X, y)
    sparse_fit = DBNRegressor(**SUPERVISED).fit(sparse(X), y)
    expected = dense.predict(X)
    assert expected.shape == (len(X), 2)
    np.testing.assert_array_equal(sparse_fit.predict(sparse(X)), expected)
    np.testing.assert_array_equal(dense.predict(sparse(X)), expected)
    assert dense.score(sparse(X), y) == dense.score(X, y)


@pytest.mark.parametrize("sparse", SPARSE_FORMATS, ids=lambda f: f.__name__)
def test_dbn_fitted_on_sparse_input_equals_the_dense_fit(digits, sparse):
    X, y = digits
    dense = DBN((16, 8), **UNSUPERVISED).fit(X)
    sparse_fit = DBN((16, 8), **UNSUPERVISED).fit(sparse(X))
    expected = dense.transform(X)
    np.testing.assert_array_equal(sparse_fit.transform(sparse(X)), expected)
    np.testing.assert_array_equal(dense.transform(sparse(X)), expected)
    np.testing.assert_array_equal(dense.reconstruct(sparse(X)), dense.reconstruct(X))
    np.testing.assert_array_equal(dense.score_samples(sparse(X)), dense.score_samples(X))
    labelled = DBN((16, 8), **UNSUPERVISED).fit(X, y)
    labelled_sparse = DBN((16, 8), **UNSUPERVISED).fit(sparse(X), y)
    expected = labelled.predict_proba(X)
    np.testing.assert_array_equal(labelled_sparse.predict_proba(sparse(X)), expected)
    np.testing.assert_array_equal(labelled.predict(sparse(X)), labelled.predict(X))


def test_large_sparse_input_is_densified_in_row_blocks(digits, monkeypatch):
    X, y = digits
    classifier = DBNClassifier(**SUPERVISED).fit(X, y)
    dbn = DBN((16, 8), **UNSUPERVISED).fit(X, y)
    expected = {
        "proba": classifier.predict_proba(X),
        "transform": dbn.transform(X),
        "dbn_proba": dbn.predict_proba(X),
        "score_samples": dbn.score_samples(X),
        "reconstruct": dbn.reconstruct(X),
    }
    densified = []
    real_dense = deepbelief.estimators._dense

    def recording_dense(block):
        densified.append(block.shape)
        return real_dense(block)

    # 7 rows of 64 features a block: the 200 rows in 29 blocks
    monkeypatch.setattr(deepbelief.estimators, "_BLOCK_VALUES", 7 * 64)
    monkeypatch.setattr(deepbelief.estimators, "_dense", recording_dense)
    S = sp.csr_matrix(X)
    # float64 sums may round in their last bit differently in smaller batches
    np.testing.assert_allclose(classifier.predict_proba(S), expected["proba"], rtol=1e-12)
    assert len(densified) == 29 and max(shape[0] for shape in densified) == 7
    np.testing.assert_allclose(dbn.transform(S), expected["transform"], rtol=1e-12)
    np.testing.assert_allclose(dbn.predict_proba(S), expected["dbn_proba"], rtol=1e-12)
    np.testing.assert_allclose(dbn.score_samples(S), expected["score_samples"], rtol=1e-12)
    # and float32 ones in more than their last bit
    np.testing.assert_allclose(dbn.reconstruct(S), expected["reconstruct"], atol=1e-6)


# ----------------------------------------------------------------------- feature names
def test_dbn_names_its_output_features_and_gives_pandas_output(digits):
    X, _ = digits
    dbn = DBN((16, 8), **UNSUPERVISED)
    assert dbn.set_output(transform="pandas") is dbn
    frame = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(X.shape[1])])
    out = dbn.fit_transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"dbn{i}" for i in range(8)]
    assert list(out.index) == list(frame.index)
    plain = dbn.set_output(transform="default").transform(frame)
    assert isinstance(plain, np.ndarray)
    np.testing.assert_array_equal(out.to_numpy(), plain)
    assert list(dbn.get_feature_names_out()) == [f"dbn{i}" for i in range(8)]
    # fitted on an array, given a sparse matrix: pandas output all the same
    on_array = DBN((16, 8), **UNSUPERVISED).set_output(transform="pandas").fit(X)
    sparse_out = on_array.transform(sp.csr_matrix(X))
    assert isinstance(sparse_out, pd.DataFrame)
    assert list(sparse_out.columns) == list(out.columns)
    np.testing.assert_array_equal(sparse_out.to_numpy(), out.to_numpy())


@pytest.mark.parametrize("layers", [(5,), (12, 3), (9, 6, 4)])
def test_feature_names_count_the_top_layer(digits, layers):
    X, _ = digits
    dbn = DBN(layers, **UNSUPERVISED).fit(X[:40])
    names = dbn.get_feature_names_out()
    assert len(names) == layers[-1] == dbn.transform(X[:3]).shape[1]
    assert names[0] == "dbn0"


def test_feature_names_need_a_fitted_dbn():
    with pytest.raises(NotFittedError):
        DBN().get_feature_names_out()


def test_pipeline_feature_names_pass_through_the_dbn(digits):
    X, _ = digits
    pipeline = make_pipeline(MinMaxScaler(), DBN((6,), **UNSUPERVISED)).fit(X)
    assert list(pipeline.get_feature_names_out()) == [f"dbn{i}" for i in range(6)]


# ----------------------------------------------------------------------- clipping
@pytest.fixture(scope="module")
def fitted(digits):
    X, y = digits
    return {
        "classifier": DBNClassifier(**SUPERVISED).fit(X, y),
        "regressor": DBNRegressor(**SUPERVISED).fit(X, y / 9.0),
        "dbn": DBN((16, 8), **UNSUPERVISED).fit(X, y),
    }


#: (estimator, method, whether it takes y)
CALLS = [
    ("classifier", "predict", False),
    ("classifier", "predict_proba", False),
    ("classifier", "score", True),
    ("regressor", "predict", False),
    ("regressor", "score", True),
    ("dbn", "transform", False),
    ("dbn", "reconstruct", False),
    ("dbn", "predict", False),
    ("dbn", "predict_proba", False),
    ("dbn", "score_samples", False),
]


@pytest.mark.parametrize("name, method, takes_y", CALLS, ids=lambda v: str(v))
def test_out_of_range_input_is_clipped_with_one_warning_per_call(
    fitted, digits, name, method, takes_y
):
    X, y = digits
    estimator = fitted[name]
    y = y / 9.0 if name == "regressor" else y
    outside = X.copy()
    outside[:5, :3] = [[-0.5], [1.5], [2.0], [-3.0], [1.01]]  # 15 values outside [0, 1]
    args = (y,) if takes_y else ()
    clipped_result, _ = call_counting_warnings(
        getattr(estimator, method), outside.clip(0, 1), *args
    )
    for data in (outside, sp.csr_matrix(outside)):
        for _ in range(2):  # once per call, every call
            result, caught = call_counting_warnings(getattr(estimator, method), data, *args)
            assert len(caught) == 1, [str(w.message) for w in caught]
            assert "15 value(s) outside [0, 1]" in str(caught[0].message)
            assert caught[0].filename == __file__  # points at the caller's line
            np.testing.assert_array_equal(result, clipped_result)


@pytest.mark.parametrize("name", ["classifier", "regressor", "dbn"])
def test_in_range_input_gives_no_clipping_warning(fitted, digits, name):
    X, _ = digits
    estimator = fitted[name]
    method = estimator.transform if name == "dbn" else estimator.predict
    _, caught = call_counting_warnings(method, X)
    assert caught == []
    _, caught = call_counting_warnings(method, sp.csr_matrix(X))
    assert caught == []


@pytest.mark.parametrize(
    "estimator",
    [
        DBNClassifier(visible="bernoulli", **SUPERVISED),
        DBNRegressor(visible="bernoulli", **SUPERVISED),
        DBN((6, 4), visible="bernoulli", **UNSUPERVISED),
    ],
    ids=["classifier", "regressor", "dbn"],
)
def test_fit_stays_strict_about_values_outside_the_unit_interval(digits, estimator):
    X, y = digits
    outside = X.copy()
    outside[3, 7] = 1.5
    with warnings.catch_warnings():
        warnings.simplefilter("error", ClippedInputWarning)
        for data in (outside, sp.csr_matrix(outside)):
            with pytest.raises(DataError, match="bernoulli"):
                clone(estimator).fit(data, y)


def test_gaussian_visible_units_are_not_clipped(digits):
    X, y = digits
    classifier = DBNClassifier(visible="gaussian", **SUPERVISED).fit(X, y)
    outside = X * 3 - 1
    proba, caught = call_counting_warnings(classifier.predict_proba, outside)
    assert caught == []
    assert not np.array_equal(proba, classifier.predict_proba(outside.clip(0, 1)))
