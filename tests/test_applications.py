"""Denoising, filling in, outlier detection and imputation (deepbelief.applications,
OutlierDetector, RBMImputer), checked against exact answers on tiny RBMs."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepbelief import DBN, RBM, DataError
from deepbelief.applications import clamped_passes, denoise, fill_in
from deepbelief.imputer import RBMImputer
from deepbelief.outliers import OutlierDetector

N_VISIBLE, N_HIDDEN = 16, 4


def block_rbm(weight=8.0, visible_bias=-4.0, hidden_bias=-16.0) -> RBM:
    """A known RBM: each hidden unit switches a block of four visible units on. By default
    each block is on with probability about 1/2 and its bits follow it 98 % of the time."""
    rbm = RBM(n_components=N_HIDDEN, dtype="float64", random_state=0)
    weights = np.zeros((N_HIDDEN, N_VISIBLE))
    for j in range(N_HIDDEN):
        weights[j, 4 * j : 4 * j + 4] = weight
    rbm.components_ = weights
    rbm.intercept_visible_ = np.full(N_VISIBLE, visible_bias)
    rbm.intercept_hidden_ = np.full(N_HIDDEN, hidden_bias)
    return rbm


def exact_samples(rbm: RBM, n: int, seed: int) -> np.ndarray:
    """``n`` exact samples: hidden states drawn from their enumerated marginal, then v | h."""
    model = rbm.model_
    h_all = torch.tensor(list(itertools.product([0.0, 1.0], repeat=N_HIDDEN)), dtype=torch.float64)
    with torch.no_grad():
        log_p = -model.free_energy_hidden(h_all)
        probs = torch.softmax(log_p, 0).numpy()
        rng = np.random.default_rng(seed)
        h = h_all[rng.choice(len(h_all), size=n, p=probs)]
        means = model.visible_mean(h).numpy()
    return (rng.random(means.shape) < means).astype(np.float64)


def exact_conditional_means(rbm: RBM, row: np.ndarray) -> np.ndarray:
    """E[v | the non-NaN entries of ``row``] by enumerating the visible states."""
    observed = ~np.isnan(row)
    free = np.flatnonzero(~observed)
    states = np.array(list(itertools.product([0.0, 1.0], repeat=len(free))))
    v = np.tile(np.nan_to_num(row), (len(states), 1))
    v[:, free] = states
    with torch.no_grad():
        log_p = -rbm.model_.free_energy(torch.as_tensor(v))
    weights = torch.softmax(log_p, 0).numpy()
    out = row.copy()
    out[free] = weights @ states
    return out


def test_clamped_entries_never_change_and_free_ones_do():
    rbm = block_rbm()
    clean = exact_samples(rbm, 50, seed=1)
    mask = np.random.default_rng(2).random(clean.shape) < 0.3
    for method in ("mean-field", "gibbs"):
        out = denoise(rbm, clean, method=method, mask=mask, steps=6, random_state=0)
        assert np.array_equal(out[~mask], clean[~mask])
        assert not np.allclose(out[mask], clean[mask])


@pytest.mark.stochastic
def test_denoising_samples_of_the_models_own_distribution(seed):
    """Samples of the known RBM with 10 % of their bits flipped: one mean-field up-down pass
    (and Gibbs averaging) at least halves the squared error of the noisy input."""
    rbm = block_rbm()
    clean = exact_samples(rbm, 400, seed=3 + 10 * seed)
    flips = np.random.default_rng(4 + 10 * seed).random(clean.shape) < 0.1
    noisy = np.where(flips, 1 - clean, clean)
    noisy_error = np.mean((noisy - clean) ** 2)
    for method in ("mean-field", "gibbs"):
        cleaned = denoise(rbm, noisy, method=method, random_state=seed)
        assert np.mean((cleaned - clean) ** 2) < 0.5 * noisy_error, method


@pytest.mark.stochastic
def test_gibbs_fill_in_matches_the_exact_conditional_means(seed):
    """Gibbs sampling with the observed entries clamped converges to E[v_missing | v_obs],
    computed by enumeration (400 chains of 200 passes, averaged), on a softer model than the
    default (whose fully hidden blocks would barely mix)."""
    rbm = block_rbm(weight=2.0, visible_bias=-1.0, hidden_bias=-2.0)
    rows = exact_samples(rbm, 3, seed=5 + 10 * seed)
    rows[0, [0, 1, 5, 9, 14]] = np.nan
    rows[1, 4:10] = np.nan
    rows[2, ::3] = np.nan
    for row in rows:
        copies = np.tile(row, (400, 1))
        filled = fill_in(rbm, copies, method="gibbs", steps=200, random_state=seed).mean(0)
        np.testing.assert_allclose(filled, exact_conditional_means(rbm, row), atol=0.03)


def test_clamped_passes_on_a_dbn_keep_the_clamped_entries():
    X = (np.random.default_rng(0).random((60, 12)) < 0.3).astype(float)
    dbn = DBN(hidden_layers=(8, 6), pretrain_epochs=2, random_state=0).fit(X)
    v = torch.as_tensor(X, dtype=dbn.dbn_.rbms[0].weight.dtype)
    free = torch.as_tensor(np.random.default_rng(1).random(X.shape) < 0.5)
    gen = torch.Generator().manual_seed(0)
    for method in ("mean-field", "gibbs"):
        out = clamped_passes(dbn.dbn_, v, free, method=method, steps=4, generator=gen)
        assert torch.equal(out[~free], v[~free])
        assert ((out >= 0) & (out <= 1)).all()
    assert np.array_equal(denoise(dbn, X, steps=1), dbn.reconstruct(X))


def test_application_errors_name_the_problem():
    rbm = block_rbm()
    X = exact_samples(rbm, 5, seed=0)
    with pytest.raises(ValueError, match="method must be one of"):
        denoise(rbm, X, method="median")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        denoise(rbm, X, steps=0)
    with pytest.raises(DataError, match="mask has shape"):
        denoise(rbm, X, mask=np.ones((5, 3), bool))
    X[2] = np.nan
    with pytest.raises(DataError, match="row 2 has no observed value"):
        fill_in(rbm, X)
    with pytest.raises(TypeError, match="fitted deepbelief.RBM"):
        denoise(object(), X)


# ---------------------------------------------------------------------- outliers
@pytest.mark.stochastic
def test_outlier_detector_ranks_anomalies_above_normal_rows(seed):
    """Trained on samples of the known RBM, it ranks uniform random bit vectors (the
    anomalies) below held-out normal samples: AUROC at least 0.95."""
    rbm = block_rbm()
    train = exact_samples(rbm, 600, seed=6 + 10 * seed)
    normal = exact_samples(rbm, 200, seed=7 + 10 * seed)
    anomalies = (np.random.default_rng(8 + 10 * seed).random((200, N_VISIBLE)) < 0.5).astype(float)
    detector = OutlierDetector(n_components=8, n_iter=15, contamination=0.05, random_state=seed)
    detector.fit(train)
    scores = detector.score_samples(np.vstack([normal, anomalies]))
    truth = np.r_[np.ones(200), np.zeros(200)]
    assert roc_auc_score(truth, scores) >= 0.95
    np.testing.assert_allclose(
        detector.decision_function(normal), detector.score_samples(normal) - detector.offset_
    )


@pytest.mark.parametrize("contamination", [0.01, 0.05, 0.2])
def test_outlier_detector_flags_the_contamination_share(contamination):
    """On rows without tied scores, ``predict`` flags the ``contamination`` share of the
    training rows, to one row."""
    X = np.random.default_rng(0).random((500, 10))
    detector = OutlierDetector(n_components=8, n_iter=2, contamination=contamination)
    flagged = np.sum(detector.fit(X).predict(X) == -1)
    assert abs(flagged - contamination * 500) <= 1


@pytest.mark.parametrize("contamination", [0, 0.6, "auto", True])
def test_outlier_detector_refuses_a_bad_contamination(contamination):
    with pytest.raises(ValueError, match="contamination must be a number in"):
        OutlierDetector(contamination=contamination).fit(np.zeros((4, 2)))


# ---------------------------------------------------------------------- imputer
@pytest.mark.stochastic
def test_imputer_beats_the_column_means_and_keeps_observed_entries(seed):
    """Data of the known RBM, 30 % of the entries missing: the RBM's fill has an RMSE at most
    0.8 times the column means' (the blocks tell each other's values); observed entries are
    returned exactly. (Binary data: Bernoulli units; a continuous table is in
    test_cli_applications.)"""
    rbm = block_rbm()
    data = exact_samples(rbm, 1000, seed=9 + 10 * seed)
    missing = np.random.default_rng(10 + 10 * seed).random(data.shape) < 0.3
    X = np.where(missing, np.nan, data)
    imputer = RBMImputer(n_components=8, n_iter=10, random_state=seed).fit(X)
    filled = imputer.transform(X)
    assert np.array_equal(filled[~missing], data[~missing])
    ours = np.sqrt(np.mean((filled[missing] - data[missing]) ** 2))
    means = np.sqrt(np.mean((np.nanmean(X, 0)[None, :] - data)[missing] ** 2))
    assert ours < 0.8 * means, (ours, means)


def test_imputer_draws_differ_by_random_state_and_average_to_the_mean():
    rbm = block_rbm()
    X = exact_samples(rbm, 300, seed=11)
    X[np.random.default_rng(12).random(X.shape) < 0.3] = np.nan
    base = RBMImputer(n_components=8, n_iter=5, sample_posterior=True, random_state=0).fit(X)
    draws = [base.set_params(random_state=s).transform(X) for s in range(2)]
    missing = np.isnan(X)
    assert not np.array_equal(draws[0][missing], draws[1][missing])
    assert np.array_equal(draws[0][~missing], X[~missing])


def test_imputer_errors_name_the_problem():
    X = np.random.default_rng(0).random((20, 3))
    bad = X.copy()
    bad[:, 1] = np.nan
    with pytest.raises(DataError, match="column 1 has no observed value"):
        RBMImputer(n_iter=1).fit(bad)
    imputer = RBMImputer(n_components=4, n_iter=1, random_state=0).fit(X)
    rows = X.copy()
    rows[4] = np.nan
    with pytest.raises(DataError, match="row 4 has no observed value"):
        imputer.transform(rows)
    with pytest.raises(ValueError, match="3 features"):
        imputer.transform(X[:, :2])
    with pytest.raises(ValueError, match="n_rounds must be a positive integer"):
        RBMImputer(n_rounds=0).fit(X)


@parametrize_with_checks(
    [
        OutlierDetector(n_components=4, n_iter=2, random_state=0),
        RBMImputer(n_components=4, n_iter=2, steps=2, random_state=0),
    ]
)
def test_scikit_learn_checks(estimator, check):
    check(estimator)
