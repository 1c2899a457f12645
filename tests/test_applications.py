"""Denoising, filling in, outlier detection and imputation (deepbelief.applications,
OutlierDetector, RBMImputer), checked against exact answers on tiny RBMs."""

import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from deepbelief import DBN, RBM, DataError
from deepbelief.applications import clamped_passes, denoise, fill_in, noise_evidence
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


def exact_posterior_means(rbm: RBM, log_likelihood) -> np.ndarray:
    """E[v | x] under the RBM's prior and a noise model, by enumerating all 2^16 clean
    states; ``log_likelihood(states)`` gives ``log p(x | v)`` of each state."""
    states = np.array(list(itertools.product([0.0, 1.0], repeat=N_VISIBLE)))
    with torch.no_grad():
        log_prior = -rbm.model_.free_energy(torch.as_tensor(states)).numpy()
    weights = np.exp(log_prior + log_likelihood(states) - np.max(log_prior))
    return weights @ states / weights.sum()


def salt_and_pepper_log_likelihood(x: np.ndarray, share: float):
    """log p(x | v) of salt-and-pepper noise: kept w.p. 1 - share, else 0 or 1."""
    kept = np.where((x == 0) | (x == 1), 0.0, 1.0)  # grey entries are always kept

    def log_likelihood(states):
        same = states == x
        inside = kept == 1.0
        p = np.where(same, 1 - share / 2, share / 2)
        return np.where(inside, 0.0, np.log(p)).sum(1)

    return log_likelihood


@pytest.mark.stochastic
@pytest.mark.parametrize("noise", ["salt-and-pepper", "gaussian"])
def test_noise_model_posterior_matches_enumeration(seed, noise):
    """With a noise model the Gibbs chain (noisy values as evidence) converges to the exact
    posterior mean E[v | x], enumerated over the 2^16 clean states (400 chains of 200 passes,
    averaged); mean-field lands near it."""
    rbm = block_rbm(weight=2.0, visible_bias=-1.0, hidden_bias=-2.0)
    rng = np.random.default_rng(6 + 10 * seed)
    clean = exact_samples(rbm, 1, seed=7 + 10 * seed)[0]
    if noise == "salt-and-pepper":
        level = 0.3
        x = np.where(rng.random(N_VISIBLE) < level, rng.random(N_VISIBLE) < 0.5, clean) * 1.0
        log_likelihood = salt_and_pepper_log_likelihood(x, level)
    else:
        level = 0.6
        x = np.clip(clean + rng.normal(0, level, N_VISIBLE), 0, 1)
        x[0], x[1] = 0.0, 1.0  # the clipped masses on both sides

        def log_likelihood(states):
            from scipy.stats import norm

            inner = norm.logpdf(x, states, level)
            low, high = norm.logcdf(-states / level), norm.logsf((1 - states) / level)
            return np.where(x == 0, low, np.where(x == 1, high, inner)).sum(1)

    exact = exact_posterior_means(rbm, log_likelihood)
    copies = np.tile(x, (400, 1))
    gibbs = denoise(rbm, copies, method="gibbs", steps=200, noise=noise, noise_level=level,
                    random_state=seed).mean(0)  # fmt: skip
    np.testing.assert_allclose(gibbs, exact, atol=0.03)
    mean_field = denoise(rbm, x[None], noise=noise, noise_level=level)[0]
    np.testing.assert_allclose(mean_field, exact, atol=0.15)


def test_salt_and_pepper_keeps_entries_it_cannot_have_touched():
    rbm = block_rbm()
    X = exact_samples(rbm, 20, seed=1)
    X[:, 3] = 0.37  # not 0 or 1: salt-and-pepper leaves such entries as they were
    out = denoise(rbm, X, noise="salt-and-pepper", noise_level=0.2)
    assert np.array_equal(out[:, 3], X[:, 3])
    free, evidence = noise_evidence(X, "salt-and-pepper", 0.2)
    assert not free[:, 3].any() and free[:, :3].all()
    kept, set_to_one = 0.9, 0.1  # a 1 is kept, or set to 1 by the noise
    np.testing.assert_allclose(np.abs(evidence[:, 0]), np.log(kept / set_to_one))


def test_noise_model_denoising_is_near_the_bayes_optimum():
    """On samples of a known RBM with 30 % of entries salt-and-pepper noise, the posterior
    mean under the noise model has a squared error within 5 % (Gibbs) and 10 % (mean-field)
    of the exact posterior mean's (the least possible), enumerated; one plain up-down pass,
    which takes the noise as the state, has more than 1.2 times it. Measured: Gibbs 0.99-1.02
    (random_state 0-2), mean-field 1.06, the plain pass 1.28, the noisy input 1.49."""
    rbm = block_rbm(weight=4.0, visible_bias=-2.0, hidden_bias=-8.0)
    rng = np.random.default_rng(8)
    clean = exact_samples(rbm, 100, seed=9)
    hit = rng.random(clean.shape) < 0.3
    noisy = np.where(hit, (rng.random(clean.shape) < 0.5) * 1.0, clean)
    likelihoods = [salt_and_pepper_log_likelihood(x, 0.3) for x in noisy]
    optimum = np.mean((np.array([exact_posterior_means(rbm, f) for f in likelihoods]) - clean) ** 2)
    kw = dict(noise="salt-and-pepper", noise_level=0.3)
    gibbs = denoise(rbm, noisy, method="gibbs", steps=400, random_state=0, **kw)
    assert np.mean((gibbs - clean) ** 2) < 1.05 * optimum
    assert np.mean((denoise(rbm, noisy, **kw) - clean) ** 2) < 1.1 * optimum
    assert np.mean((denoise(rbm, noisy) - clean) ** 2) > 1.2 * optimum


def test_evidence_of_zero_gives_the_plain_passes_on_a_dbn():
    """The noise-model passes with no evidence are the plain ones, step for step: the same
    mean-field iteration, and with the same generator the same Gibbs chain."""
    X = (np.random.default_rng(0).random((60, 12)) < 0.3).astype(float)
    for layers in [(8, 6), (8,)]:
        dbn = DBN(hidden_layers=layers, pretrain_epochs=2, random_state=0).fit(X)
        v = torch.as_tensor(X, dtype=dbn.dbn_.rbms[0].weight.dtype)
        free = torch.as_tensor(np.random.default_rng(1).random(X.shape) < 0.5)
        zero = torch.zeros_like(v)
        for method in ("mean-field", "gibbs"):
            plain, with_zero = (
                clamped_passes(
                    dbn.dbn_,
                    v,
                    free,
                    method=method,
                    steps=4,
                    evidence=e,
                    generator=torch.Generator().manual_seed(3),
                )  # fmt: skip
                for e in (None, zero)
            )
            torch.testing.assert_close(with_zero, plain, rtol=1e-6, atol=1e-6)


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
    X = exact_samples(rbm, 5, seed=0)
    with pytest.raises(ValueError, match="noise must be one of"):
        denoise(rbm, X, noise="poisson", noise_level=0.1)
    with pytest.raises(ValueError, match=r"must lie in \(0, 1\]"):
        denoise(rbm, X, noise="salt-and-pepper", noise_level=1.5)
    with pytest.raises(ValueError, match="standard deviation"):
        denoise(rbm, X, noise="gaussian", noise_level=0)
    with pytest.raises(ValueError, match="must be a number"):
        denoise(rbm, X, noise="gaussian")
    with pytest.raises(ValueError, match="either mask"):
        denoise(rbm, X, noise="gaussian", noise_level=0.3, mask=np.ones(X.shape, bool))
    with pytest.raises(ValueError, match="noise_level needs noise"):
        denoise(rbm, X, noise_level=0.3)
    gaussian = RBM(n_components=3, visible="gaussian", n_iter=1, random_state=0).fit(X + 0.5)
    with pytest.raises(ValueError, match="Bernoulli"):
        denoise(gaussian, X, noise="gaussian", noise_level=0.3)


@pytest.mark.filterwarnings("error")
def test_a_data_frame_meets_no_feature_name_warning_in_fit_in_or_outlier_fit():
    """OutlierDetector.fit and fill_in warned "X does not have valid feature names, but ...
    was fitted with feature names" on the DataFrame the model was fitted with (audit)."""
    import pandas as pd

    frame = pd.DataFrame(np.random.default_rng(0).random((60, 6))).add_prefix("p")
    detector = OutlierDetector(n_components=4, n_iter=1, random_state=0).fit(frame)
    assert detector.predict(frame).shape == (60,)
    rbm = RBM(n_components=4, n_iter=1, random_state=0).fit(frame)
    filled = fill_in(rbm, frame.mask(frame > 0.9))
    assert filled.shape == (60, 6) and not np.isnan(filled).any()
    with pytest.raises(DataError, match="feature names should match"):  # still checked
        fill_in(rbm, frame.rename(columns={"p0": "other"}))


def test_application_functions_refuse_bad_shapes_and_unfitted_models():
    """A 1-D X to fill_in is a ValueError about the shape (it was an IndexError); an unfitted
    estimator is said to be unfitted (it was "must be a fitted RBM ... got RBM"); zero rows
    are refused clearly, as scikit-learn's estimators refuse them."""
    from sklearn.exceptions import NotFittedError

    from deepbelief.applications import typicality

    rbm = block_rbm()
    X = exact_samples(rbm, 5, seed=0)
    row = X[0].copy()
    row[3] = np.nan
    with pytest.raises(ValueError, match=r"X must be 2-D.*got shape \(16,\).*reshape\(1, -1\)"):
        fill_in(rbm, row)
    assert fill_in(rbm, row.reshape(1, -1)).shape == (1, N_VISIBLE)
    for unfitted in (RBM(n_components=3), DBN(hidden_layers=(3,))):
        name = type(unfitted).__name__
        for call in (denoise, fill_in, typicality):
            with pytest.raises(NotFittedError, match=f"this {name} is not fitted yet"):
                call(unfitted, X)
    for call in (denoise, fill_in, typicality):
        with pytest.raises(ValueError, match=r"needs at least one row; X has shape \(0, 16\)"):
            call(rbm, np.zeros((0, N_VISIBLE)))
    assert typicality(rbm, X).shape == (5,)


# ---------------------------------------------------------------------- outliers
@pytest.mark.stochastic
def test_outlier_detector_ranks_anomalies_above_normal_rows(seed):
    """Trained on samples of the known RBM, it ranks uniform random bit vectors (the
    anomalies) below held-out normal samples: AUROC at least 0.95."""
    rbm = block_rbm()
    train = exact_samples(rbm, 600, seed=6 + 10 * seed)
    normal = exact_samples(rbm, 200, seed=7 + 10 * seed)
    anomalies = (np.random.default_rng(8 + 10 * seed).random((200, N_VISIBLE)) < 0.5).astype(float)
    # measured AUROC at seeds 0-2: 0.998, 0.997, 0.999 (40 epochs at the default rate 0.03)
    detector = OutlierDetector(n_components=8, n_iter=40, contamination=0.05, random_state=seed)
    detector.fit(train)
    scores = detector.score_samples(np.vstack([normal, anomalies]))
    truth = np.r_[np.ones(200), np.zeros(200)]
    assert roc_auc_score(truth, scores) >= 0.95
    np.testing.assert_allclose(
        detector.decision_function(normal), detector.score_samples(normal) - detector.offset_
    )


def test_outlier_detector_removes_the_scores_trend_in_the_row_sums():
    """``detrend``: ``trend_`` is the least-squares slope of the training rows' ``-F`` against
    their row sums, and the training scores are then uncorrelated with the row sums; without
    it, and by default on Gaussian units, the scores are ``-F`` itself."""
    from deepbelief.applications import typicality

    X = np.random.default_rng(4).random((300, 12)) ** 2  # rows of unequal sums
    on = OutlierDetector(n_components=6, n_iter=3, random_state=0).fit(X)
    raw = typicality(on.rbm_, X)
    sums = X.sum(1)
    assert on.trend_ == pytest.approx(np.polyfit(sums, raw, 1)[0], rel=1e-9)
    assert on.trend_ != 0
    np.testing.assert_allclose(on.score_samples(X), raw - on.trend_ * sums)
    assert abs(np.corrcoef(on.score_samples(X), sums)[0, 1]) < 1e-9
    off = OutlierDetector(n_components=6, n_iter=3, detrend=False, random_state=0).fit(X)
    assert off.trend_ == 0.0
    np.testing.assert_array_equal(off.score_samples(X), typicality(off.rbm_, X))
    gaussian = OutlierDetector(n_components=6, n_iter=3, visible="gaussian", random_state=0)
    assert gaussian.fit(X * 5 - 2).trend_ == 0.0
    with pytest.raises(ValueError, match="detrend must be True, False or 'auto'"):
        OutlierDetector(detrend="sum").fit(X)


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


def test_multi_prediction_training_sharpens_the_fill():
    """scikit-learn's digits (1,400 rows to train, 397 to test): training the mean-field fill
    itself (prediction_epochs=30) cuts the RMSE on the missing pixels by more than 10 % against
    the CD-trained RBM alone, with 50 % of the pixels missing at random and with the lower
    half missing (measured at random_state 0 and 1: 0.214 -> 0.161 and 0.211 -> 0.160 at
    random; 0.271 -> 0.212 and 0.294 -> 0.216 for the lower half)."""
    from sklearn.datasets import load_digits

    X = load_digits().data / 16.0
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    train, test = X[order[:1400]], X[order[1400:]]
    lower = np.zeros(test.shape, bool)
    lower[:, 32:] = True
    masks = [rng.random(test.shape) < 0.5, lower]
    errors = {}
    for epochs in (0, 30):
        imputer = RBMImputer(n_components=128, prediction_epochs=epochs, random_state=0)
        imputer.fit(train)
        errors[epochs] = [
            np.sqrt(np.mean((imputer.transform(np.where(m, np.nan, test))[m] - test[m]) ** 2))
            for m in masks
        ]
    assert len(imputer.prediction_history_) == 30
    for without, with_ in zip(errors[0], errors[30]):
        assert with_ < 0.9 * without, errors


def test_hidden_entries_are_random_subsets_and_runs():
    from deepbelief.multi_prediction import hide

    hidden = hide(400, 30, torch.Generator().manual_seed(0), "cpu").numpy()
    subsets, runs = hidden[:200], hidden[200:]
    assert np.ptp(subsets.mean(1)) > 0.8  # the share varies from row to row
    # a run (wrapping around) changes value at most twice along the row, circularly
    changes = (runs != np.roll(runs, 1, axis=1)).sum(1)
    assert (changes <= 2).all() and runs.any(1).all()
    assert ((subsets != np.roll(subsets, 1, axis=1)).sum(1) > 2).mean() > 0.8


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
    with pytest.raises(ValueError, match="prediction_epochs must be a non-negative integer"):
        RBMImputer(prediction_epochs=-1).fit(X)
    with pytest.raises(ValueError, match="prediction_learning_rate must be a number > 0"):
        RBMImputer(prediction_learning_rate=0).fit(X)
    imputer = RBMImputer(n_components=4, n_iter=1, random_state=0).fit(X)
    rows = X.copy()
    rows[4] = np.nan
    with pytest.raises(DataError, match="row 4 has no observed value"):
        imputer.transform(rows)
    with pytest.raises(ValueError, match="3 features"):
        imputer.transform(X[:, :2])
    with pytest.raises(ValueError, match="n_rounds must be a positive integer"):
        RBMImputer(n_rounds=0).fit(X)
    rows = X.copy()
    rows[2, 1] = np.inf  # it used to be scikit-learn's "Input X contains infinity ..."
    with pytest.raises(DataError, match=r"infinity at row 2, column 1"):
        imputer.transform(rows)
    text = X.astype(object)
    text[3, 2] = "n/a"
    with pytest.raises(DataError, match=r"numeric: column 2 holds 'n/a' at row 3"):
        imputer.transform(text)


def test_imputer_names_its_output_columns_like_iterative_imputer():
    """``get_feature_names_out`` and ``set_output``: a Pipeline's pandas output keeps the
    columns' names (it used to refuse: "'set_output' is not available")."""
    import pandas as pd
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = pd.DataFrame(np.random.default_rng(0).random((30, 3)), columns=["a", "b", "c"])
    X.iloc[::5, 0] = np.nan
    imputer = RBMImputer(n_components=4, n_iter=1, prediction_epochs=0, random_state=0)
    pipe = make_pipeline(imputer, StandardScaler()).set_output(transform="pandas")
    out = pipe.fit_transform(X)
    assert list(out.columns) == ["a", "b", "c"] and not out.isna().any().any()
    assert list(pipe.get_feature_names_out()) == ["a", "b", "c"]
    assert list(imputer.get_feature_names_out()) == ["a", "b", "c"]


def test_fill_in_returns_the_observed_entries_as_given():
    """Values outside a Bernoulli model's [0, 1] are clipped on their way into the model but
    come back as given (they used to come back clipped), and a ``start`` of the wrong shape
    is named (it used to be NumPy's broadcasting error)."""
    X = np.random.default_rng(0).random((40, 5))
    model = RBM(n_components=3, n_iter=1, random_state=0).fit(X)
    holes = X[:4] * 3  # out of [0, 1]
    holes[:, 2] = np.nan
    with pytest.warns(UserWarning, match="outside"):
        filled = fill_in(model, holes)
    observed = ~np.isnan(holes)
    assert np.array_equal(filled[observed], holes[observed])
    assert ((filled[:, 2] >= 0) & (filled[:, 2] <= 1)).all()
    with pytest.raises(DataError, match=r"start must have shape \(5,\).*got shape \(3,\)"):
        fill_in(model, holes, start=np.zeros(3))


@parametrize_with_checks(
    [
        OutlierDetector(n_components=4, n_iter=2, random_state=0),
        RBMImputer(n_components=4, n_iter=2, steps=2, random_state=0),
    ]
)
def test_scikit_learn_checks(estimator, check):
    check(estimator)
