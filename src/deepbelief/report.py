"""Self-contained HTML reports: text, metric tables and embedded PNG plots in one file.

The page needs nothing else: images are base64 ``data:`` URIs and the style sheet is
inline, so the file can be mailed, archived or opened offline. Only the standard library
is used.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from ._version import __version__
from .errors import DeepBeliefError
from .io import atomic_write_bytes

_SECTION_KEYS = frozenset({"heading", "text", "metrics", "table", "images"})
_IMAGE_TYPES = (  # (signature, MIME type)
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ccc; padding-bottom: .3rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #e3e3e3; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border: 1px solid #d0d0d0; padding: .25rem .6rem; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { font-size: .9rem; color: #555; }
footer { margin-top: 3rem; font-size: .8rem; color: #888; }
""".strip()


def _scalar(value):
    """A 0-d NumPy array or tensor as a Python number; anything else unchanged."""
    shape = getattr(value, "shape", None)
    if shape is not None and tuple(shape) == () and hasattr(value, "item"):
        return value.item()
    return value


def format_value(value) -> str:
    """Format one metric or table cell as text (not yet HTML-escaped).

    Parameters
    ----------
    value : object
        Floats (Python, NumPy or 0-d tensors) get 4 significant digits; integers and
        booleans are written in full; anything else goes through :func:`str`.

    Returns
    -------
    text : str
        E.g. ``format_value(0.123456) == "0.1235"``, ``format_value(12) == "12"``.
    """
    value = _scalar(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def _cell(value, tag: str = "td") -> str:
    value = _scalar(value)
    text = html.escape(format_value(value))
    numeric = isinstance(value, numbers.Number) and not isinstance(value, bool)
    return f'<{tag} class="num">{text}</{tag}>' if numeric else f"<{tag}>{text}</{tag}>"


def _text(text: str) -> str:
    paragraphs = [p.strip() for p in str(text).split("\n\n") if p.strip()]
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def _metrics(metrics: Mapping, where: str) -> str:
    if not isinstance(metrics, Mapping):
        raise ValueError(f"{where}: 'metrics' must be a dict of name -> value")
    rows = "\n".join(
        f"<tr><th>{html.escape(str(name))}</th>{_cell(value)}</tr>"
        for name, value in metrics.items()
    )
    return f'<table class="metrics">\n{rows}\n</table>'


def _table(table: Mapping, where: str) -> str:
    if not isinstance(table, Mapping) or "columns" not in table or "rows" not in table:
        raise ValueError(f"{where}: 'table' must be a dict with 'columns' and 'rows'")
    columns = list(table["columns"])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for i, row in enumerate(table["rows"]):
        row = list(row)
        if len(row) != len(columns):
            raise ValueError(
                f"{where}: table row {i} has {len(row)} cells for {len(columns)} columns"
            )
        body.append("<tr>" + "".join(_cell(v) for v in row) + "</tr>")
    rows = "\n".join(body)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"


def _image(item, where: str) -> str:
    if isinstance(item, (str, os.PathLike)):
        path, caption = Path(item), None
    elif isinstance(item, Sequence) and len(item) == 2:
        path, caption = Path(item[0]), item[1]
    else:
        raise ValueError(f"{where}: an image is a path or a (path, caption) pair, got {item!r}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DeepBeliefError(f"report image not found: {path}") from None
    except OSError as exc:
        raise DeepBeliefError(f"cannot read report image {path}: {exc}") from exc
    mime = next((m for sig, m in _IMAGE_TYPES if data.startswith(sig)), None)
    if mime is None:
        raise DeepBeliefError(f"report image {path} is not a PNG, JPEG or GIF file")
    uri = f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
    alt = html.escape(str(caption if caption is not None else path.name), quote=True)
    figcaption = f"<figcaption>{html.escape(str(caption))}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{alt}">{figcaption}</figure>'


def _section(section: Mapping, index: int) -> str:
    where = f"section {index}"
    if not isinstance(section, Mapping) or "heading" not in section:
        raise ValueError(f"{where}: a section is a dict with at least a 'heading'")
    unknown = set(section) - _SECTION_KEYS
    if unknown:
        raise ValueError(
            f"{where}: unknown keys {sorted(map(str, unknown))}; allowed: {sorted(_SECTION_KEYS)}"
        )
    parts = [f"<h2>{html.escape(str(section['heading']))}</h2>"]
    if section.get("text"):
        parts.append(_text(section["text"]))
    if section.get("metrics") is not None:
        parts.append(_metrics(section["metrics"], where))
    if section.get("table") is not None:
        parts.append(_table(section["table"], where))
    for item in section.get("images") or []:
        parts.append(_image(item, where))
    return "<section>\n" + "\n".join(parts) + "\n</section>"


def render_report(title: str, sections: Sequence[Mapping]) -> str:
    """Build the HTML page of :func:`write_report` without writing it.

    Parameters
    ----------
    title : str
        Page title and top heading.
    sections : sequence of dict
        As in :func:`write_report`.

    Returns
    -------
    html : str
        The complete, self-contained page.

    Raises
    ------
    deepbelief.errors.DeepBeliefError
        If an image file is missing, unreadable or not a PNG, JPEG or GIF.
    ValueError
        If a section is malformed (no heading, unknown key, ragged table).
    """
    body = "\n".join(_section(section, i) for i, section in enumerate(sections))
    escaped = html.escape(str(title))
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escaped}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n"
        f"<h1>{escaped}</h1>\n{body}\n"
        f"<footer>Written by deepbelief {html.escape(__version__)}.</footer>\n"
        "</body>\n</html>\n"
    )


def write_report(path, title: str, sections: Sequence[Mapping]):
    """Write a self-contained HTML report (atomically) and return its path.

    Parameters
    ----------
    path : str or os.PathLike
        The HTML file to write; its folder must exist. A temporary file in the same
        folder is renamed over it, so a crash never leaves a half-written report.
    title : str
        Page title and top heading.
    sections : sequence of dict
        Each has a ``"heading"`` (str) and any of: ``"text"`` (str; blank lines separate
        paragraphs), ``"metrics"`` (dict name -> number or str, shown as a two-column
        table, floats with 4 significant digits), ``"table"`` (``{"columns": [...],
        "rows": [[...], ...]}``) and ``"images"`` (a list of paths or ``(path, caption)``
        pairs; each file is embedded as a base64 ``data:`` URI). All text is
        HTML-escaped.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    deepbelief.errors.DeepBeliefError
        If an image file is missing (the message names it), unreadable or not a PNG,
        JPEG or GIF.
    ValueError
        If a section is malformed (no heading, unknown key, ragged table).
    """
    page = render_report(title, sections)  # fails before anything is written
    path = Path(path)
    atomic_write_bytes(path, page.encode("utf-8"))  # the mode follows the umask
    return path
