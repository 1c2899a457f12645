"""The HTML report: self-contained (embedded PNGs, no external references), escaped, atomic."""

import base64
import re

import numpy as np
import pytest

from deepbelief.errors import DeepBeliefError
from deepbelief.report import format_value, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def pngs(tmp_path):
    """Two real PNG files written by the plotting module."""
    from deepbelief.plots import save_image_grid, tile_images

    rng = np.random.RandomState(0)
    paths = []
    for name in ("filters.png", "samples.png"):
        paths.append(save_image_grid(tile_images(rng.rand(4, 9), (3, 3)), tmp_path / name))
    return paths


def _images(page):
    return re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_report_is_self_contained_and_escaped(tmp_path, pngs):
    title = 'Digits <DBN> & "friends"'
    sections = [
        {
            "heading": "Pretraining <layer 1>",
            "text": "First paragraph & more.\n\nSecond <b>paragraph</b>.",
            "metrics": {
                "reconstruction error": 0.0123456,
                "accuracy": np.float32(0.987654),
                "epochs": 20,
                "sampler": "pcd<5>",
            },
            "images": [pngs[0], (pngs[1], "samples <per class>")],
        },
        {
            "heading": "Comparison",
            "table": {"columns": ["model", "accuracy"], "rows": [["DBN", 0.97531], ["RBM", 1]]},
        },
    ]
    path = write_report(tmp_path / "report.html", title, sections)
    assert path == tmp_path / "report.html"
    page = path.read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>")
    escaped = "Digits &lt;DBN&gt; &amp; &quot;friends&quot;"
    assert f"<title>{escaped}</title>" in page and f"<h1>{escaped}</h1>" in page
    assert "<DBN>" not in page and "<b>paragraph" not in page  # text never becomes markup
    assert "Pretraining &lt;layer 1&gt;" in page
    assert "<p>First paragraph &amp; more.</p>" in page
    assert "pcd&lt;5&gt;" in page
    # metric and table values, floats with 4 significant digits
    for value in ("0.01235", "0.9877", ">20<", "0.9753", ">1<"):
        assert value in page, value
    assert "0.0123456" not in page
    assert "<th>model</th><th>accuracy</th>" in page
    # one embedded, valid PNG per image, identical to the file
    embedded = _images(page)
    assert len(embedded) == 2 == page.count("<img ")
    for data, source in zip(embedded, pngs):
        decoded = base64.b64decode(data, validate=True)
        assert decoded.startswith(PNG_SIGNATURE)
        assert decoded == source.read_bytes()
    assert "<figcaption>samples &lt;per class&gt;</figcaption>" in page
    # nothing outside the file: no links, scripts, style sheets or remote images
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(link|script)\b", page)
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))
    assert "<style>" in page
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file was renamed


def test_missing_image_raises_and_writes_nothing(tmp_path, pngs):
    missing = tmp_path / "nowhere" / "curves.png"
    target = tmp_path / "report.html"
    target.write_text("old report")
    sections = [{"heading": "Plots", "images": [pngs[0], missing]}]
    with pytest.raises(DeepBeliefError, match="curves.png"):
        write_report(target, "Report", sections)
    assert target.read_text() == "old report"  # the previous report is untouched
    assert not list(tmp_path.glob(".*tmp*"))


def test_non_image_file_is_refused(tmp_path):
    fake = tmp_path / "plot.png"
    fake.write_text("<svg onload=alert(1)>")
    with pytest.raises(DeepBeliefError, match="plot.png"):
        write_report(tmp_path / "r.html", "R", [{"heading": "x", "images": [fake]}])


@pytest.mark.parametrize(
    ("sections", "message"),
    [
        ([{"text": "no heading"}], "heading"),
        ([{"heading": "h", "metric": {"a": 1}}], "unknown keys"),
        ([{"heading": "h", "table": {"columns": ["a", "b"], "rows": [[1]]}}], "row 0"),
        ([{"heading": "h", "table": {"rows": []}}], "columns"),
    ],
)
def test_malformed_sections_are_refused(tmp_path, sections, message):
    with pytest.raises(ValueError, match=message):
        write_report(tmp_path / "r.html", "R", sections)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.123456, "0.1235"),
        (123456.7, "1.235e+05"),
        (np.float64(2.0), "2"),
        (np.array(0.333333), "0.3333"),
        (7, "7"),
        (np.int64(123456789), "123456789"),
        (True, "True"),
        (float("nan"), "nan"),
        ("text", "text"),
    ],
)
def test_format_value_uses_four_significant_digits_for_floats(value, text):
    assert format_value(value) == text
