"""Rows without a label (``unlabeled=``) join pretraining, not fine-tuning."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from deepbelief import DBNClassifier, DBNRegressor, dbn_estimators
from deepbelief.errors import DataError


@pytest.fixture
def pretrained_rows(monkeypatch):
    """The number of rows each pretraining saw."""
    seen = []
    real = dbn_estimators.pretrain_dbn

    def recording(dbn, X, *args, **kw):
        seen.append(len(X))
        return real(dbn, X, *args, **kw)

    monkeypatch.setattr(dbn_estimators, "pretrain_dbn", recording)
    return seen


def test_unlabeled_rows_are_pretrained_on_and_never_a_class(pretrained_rows):
    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16, y[:400].copy()
    y[100:] = -1
    clf = DBNClassifier(hidden_layers=(32,), pretrain_epochs=2, epochs=5, unlabeled=-1,
                        random_state=0).fit(X, y)  # fmt: skip
    assert pretrained_rows == [400]
    assert -1 not in clf.classes_ and len(clf.classes_) == 10
    assert clf.settings_["epochs"] == 5 and clf.n_features_in_ == 64
    # the same labelled rows without the marker: -1 is a class like any other
    plain = DBNClassifier(hidden_layers=(32,), pretrain_epochs=2, epochs=5, random_state=0)
    assert -1 in plain.fit(X, y).classes_


def test_a_nan_marker_for_regression_and_an_all_unlabeled_target(pretrained_rows):
    rng = np.random.default_rng(0)
    X = rng.random((60, 5))
    y = X.sum(1)
    y[::3] = np.nan
    DBNRegressor(hidden_layers=(8,), pretrain_epochs=1, epochs=2, unlabeled=np.nan).fit(X, y)
    assert pretrained_rows == [60]
    with pytest.raises(DataError, match="every row's target is the unlabeled marker -1"):
        DBNClassifier(unlabeled=-1).fit(X, np.full(60, -1))


@pytest.mark.parametrize("missing", [np.nan, None, "pd.NA"])
def test_a_nan_marker_finds_missing_text_labels(pretrained_rows, missing):
    """Text labels read by pandas mark the missing ones NaN, None or ``pd.NA``; the NaN marker
    finds each (it used to convert the labels to numbers and fail on the text)."""
    import pandas as pd

    X, digits = load_digits(return_X_y=True)
    y = pd.Series(np.array(list("abcdefghij"))[digits[:200]], dtype=object)
    y[::4] = pd.NA if missing == "pd.NA" else missing
    clf = DBNClassifier(hidden_layers=(8,), pretrain_epochs=1, epochs=2, unlabeled=np.nan)
    clf.set_params(random_state=0).fit(X[:200] / 16, y)
    assert pretrained_rows == [200]
    assert list(clf.classes_) == list("abcdefghij")
