"""No global side effects: importing deepbelief, and calling its functions, leaves the
process's matplotlib backend, logging handlers, warnings filters, torch thread count, default
dtype and global random streams as they were (issue 13, point 7).

Each check runs in a fresh interpreter (``sys.executable -c``), because this test process has
long since imported everything.
"""

import json
import os
import subprocess
import sys
import textwrap

import pytest

# The dependencies are imported before the first snapshot: numpy, torch, scipy and
# scikit-learn add warnings filters of their own when imported (and torch again, through
# sympy, when its first optimizer is built), which no library using them can prevent; what is
# checked is that deepbelief's own code adds nothing.
THIRD_PARTY = textwrap.dedent(
    """
    import numpy, torch, scipy, scipy.special, sklearn, safetensors.torch, pandas
    import sklearn.base, sklearn.utils.validation, sklearn.utils.multiclass
    import sklearn.utils.metaestimators, sklearn.metrics, sklearn.preprocessing
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    """
)

# Prints a JSON snapshot of every piece of global state a library could change.
SNAPSHOT = textwrap.dedent(
    """
    import json, logging, sys, warnings

    def snapshot():
        import numpy as np
        import torch
        state = {
            "root_handlers": [repr(h) for h in logging.getLogger().handlers],
            "root_level": logging.getLogger().level,
            # (a NullHandler is what the logging HOWTO asks a library to add, and all: its
            # records then reach the handlers the application configures, and no others)
            "library_handlers": [repr(h) for h in logging.getLogger("deepbelief").handlers
                                 if not isinstance(h, logging.NullHandler)],
            "library_level": logging.getLogger("deepbelief").level,
            "warnings_filters": [repr(f) for f in warnings.filters],
            "torch_threads": torch.get_num_threads(),
            "torch_dtype": str(torch.get_default_dtype()),
            "torch_rng": torch.get_rng_state().sum().item(),
            "torch_seed": torch.initial_seed(),
            "numpy_rng": repr(np.random.get_state()[1][:4].tolist()),
            "grad_enabled": torch.is_grad_enabled(),
        }
        if "matplotlib" in sys.modules:
            import matplotlib
            state["backend"] = matplotlib.get_backend()
            state["rc_backend"] = matplotlib.rcParams._get_backend_or_none()
        if "matplotlib.pyplot" in sys.modules:
            state["pyplot_figures"] = sys.modules["matplotlib.pyplot"].get_fignums()
        return state
    """
)


def _run(*pieces: str, env_extra: dict | None = None, tmp_path=None) -> dict:
    """Run ``SNAPSHOT`` and the code ``pieces`` (each dedented) in a fresh interpreter; the
    last piece prints one JSON line."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env.update(env_extra or {})
    code = SNAPSHOT + THIRD_PARTY + "".join(textwrap.dedent(p) for p in pieces)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_unchanged(result: dict):
    before, after = result["before"], result["after"]
    changed = {k: (before.get(k), after.get(k)) for k in before if before[k] != after.get(k)}
    assert not changed, changed


def test_importing_the_package_changes_no_global_state():
    result = _run(
        """
        before = snapshot()
        import deepbelief, deepbelief.nn, deepbelief.evaluation, deepbelief.plots
        import deepbelief.report, deepbelief.training, deepbelief.data, deepbelief.io
        print(json.dumps({"before": before, "after": snapshot()}))
        """
    )
    _assert_unchanged(result)


PLOT_EVERYTHING = """
    import numpy as np
    from deepbelief import plots
    rng = np.random.default_rng(0)
    plots.plot_filters(rng.normal(size=(16, 9)), (4, 4), "filters.png")
    plots.save_image_grid(plots.tile_images(rng.random((4, 9)), (3, 3)), "grid.png", title="t")
    plots.plot_learning_curves({"fit": [{"epoch": 1, "loss": 1.0}, {"epoch": 2, "loss": 0.5}]},
                               "curves.png", title="curves")
    plots.plot_confusion_matrix([[5, 1], [2, 7]], ["a", "b"], "cm.png")
    plots.plot_class_samples(rng.random((4, 9)), ["a", "b"], (3, 3), "samples.png", title="s")
    plots.plot_predicted_vs_actual(rng.random(9), rng.random(9), "fit.png", names=["y"])
"""


@pytest.mark.parametrize("how", ["MPLBACKEND", "matplotlib.use"])
def test_plotting_keeps_a_non_agg_backend_and_pyplot_state(tmp_path, how):
    """The user chose the svg backend (by environment or by ``matplotlib.use``) before
    importing deepbelief.plots: it is still svg after every plot is written, and pyplot holds
    no figure of ours."""
    select = {
        "MPLBACKEND": "",
        "matplotlib.use": "import matplotlib; matplotlib.use('svg')",
    }[how]
    env = {"MPLBACKEND": "svg"} if how == "MPLBACKEND" else {}
    result = _run(
        select + "\n",
        """
        import matplotlib, matplotlib.pyplot
        before = snapshot()
        assert before["backend"] == "svg", before["backend"]
        """,
        PLOT_EVERYTHING,
        """
        import os
        assert all(os.path.getsize(f) > 0 for f in
                   ("filters.png", "grid.png", "curves.png", "cm.png", "samples.png",
                    "fit.png"))
        print(json.dumps({"before": before, "after": snapshot()}))
        """,
        env_extra=env,
        tmp_path=tmp_path,
    )
    _assert_unchanged(result)
    assert result["after"]["backend"] == "svg"
    assert result["after"]["pyplot_figures"] == []
    assert {p.name for p in tmp_path.iterdir()} == {
        "filters.png",
        "grid.png",
        "curves.png",
        "cm.png",
        "samples.png",
        "fit.png",
    }


def test_plotting_without_pyplot_never_imports_it(tmp_path):
    """A process that never touched matplotlib: plotting does not import pyplot (which would
    pick and lock in a backend for the rest of the process)."""
    result = _run(
        """
        before = snapshot()
        """,
        PLOT_EVERYTHING,
        """
        pyplot_imported = "matplotlib.pyplot" in sys.modules
        after = snapshot()  # matplotlib.get_backend() may import pyplot: checked before
        after.pop("backend"), after.pop("rc_backend"), after.pop("pyplot_figures", None)
        after["pyplot_imported"] = pyplot_imported
        print(json.dumps({"before": before, "after": after}))
        """,
        tmp_path=tmp_path,
    )
    assert result["after"].pop("pyplot_imported") is False
    _assert_unchanged(result)


def test_fitting_and_evaluating_an_rbm_changes_no_global_state(tmp_path):
    """Estimators and evaluation draw from their own generators: no global seeding, no use of
    torch's global random stream, no thread or dtype settings, no warnings filters or handlers
    left behind."""
    result = _run(
        """
        import torch, numpy as np
        import deepbelief
        from deepbelief.evaluation import ais_log_partition
        before = snapshot()
        X = np.random.default_rng(0).integers(0, 2, size=(40, 6)).astype(np.float32)
        rbm = deepbelief.RBM(n_components=3, n_iter=2, random_state=0).fit(X)
        rbm.score(X)
        rbm.transform(X)
        ais_log_partition(rbm.model_, data=torch.tensor(X), n_runs=4, betas=20,
                          generator=torch.Generator().manual_seed(0))
        print(json.dumps({"before": before, "after": snapshot()}))
        """,
        tmp_path=tmp_path,
    )
    _assert_unchanged(result)


def test_fitting_a_dbn_classifier_changes_no_global_state(tmp_path):
    result = _run(
        """
        import numpy as np
        import deepbelief
        before = snapshot()
        X = np.random.default_rng(0).integers(0, 2, size=(40, 6)).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)
        clf = deepbelief.DBNClassifier(hidden_layers=(4, 3), pretrain_epochs=1, epochs=1,
                                       random_state=0).fit(X, y)
        clf.predict_proba(X)
        print(json.dumps({"before": before, "after": snapshot()}))
        """,
        tmp_path=tmp_path,
    )
    _assert_unchanged(result)
