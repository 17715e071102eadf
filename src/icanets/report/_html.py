"""HTML assembly: page template, escaped tables, a little JavaScript (sorting, hover)."""

from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd

from icanets._format import format_p, is_p_column

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 2em 4em; color: #222;
       max-width: 1200px; }
h1 { margin-top: 1em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f2f2f2; cursor: pointer; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; margin: 4px; } .row img { max-width: 48%; vertical-align: top; }
.thumbs img { width: 100%; max-width: 1100px; } .note { color: #8a5a00; font-size: 12px; }
nav a { margin-right: 1em; } #summary { background: #f7fbff; padding: 0.5em 1em; border: 1px solid #cfe2f3; }
"""

_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, index) {
  th.addEventListener('click', function () {
    var table = th.closest('table'); var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = th.getAttribute('data-order') !== 'asc';
    rows.sort(function (a, b) {
      var x = a.cells[index].textContent, y = b.cells[index].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var cmp = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return ascending ? cmp : -cmp;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    th.setAttribute('data-order', ascending ? 'asc' : 'desc');
  });
});
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.setAttribute('data-images-total', images.length);
  document.body.setAttribute('data-images-loaded', loaded.length);
});
"""


def _cell(value) -> str:
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        return f"{value:.4g}"
    return escape(str(value))


def _p_cell(value) -> str:
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return escape(value)  # already formatted (e.g. '<= 0.0002') or text
        return escape(format_p(number))
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return ""
    return escape(format_p(value))


def rounded(frame: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """``frame`` with its numeric columns rounded, except p-values (which :func:`table_html`
    writes with :func:`icanets._format.format_p`, so no p is shown as 0)."""
    out = frame.copy()
    for column in out.columns:
        if not is_p_column(column) and pd.api.types.is_float_dtype(out[column]):
            out[column] = out[column].round(digits)
    return out


def table_html(frame: pd.DataFrame, *, table_id: str | None = None, sortable: bool = False) -> str:
    """An HTML table; every header and cell is HTML-escaped, and every p-value column
    (:func:`icanets._format.is_p_column`) is written by :func:`icanets._format.format_p`."""
    if frame is None or frame.empty:
        return "<p>(none)</p>"
    attrs = f" id='{escape(table_id)}'" if table_id else ""
    attrs += " class='sortable'" if sortable else ""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in frame.columns)
    is_p = [is_p_column(c) for c in frame.columns]
    body = "".join("<tr>" + "".join(f"<td>{_p_cell(v) if p else _cell(v)}</td>" for v, p in zip(row, is_p)) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table{attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def sortable_table(frame: pd.DataFrame, *, table_id: str) -> str:
    return table_html(frame, table_id=table_id, sortable=True)


def page(*, title: str, sections: list[tuple[str, str]], summary: str, methods: str) -> str:
    """The whole self-contained page. ``sections`` hold HTML built from escaped text."""
    nav = "".join(f"<a href='#section-{i}'>{escape(name)}</a>" for i, (name, _) in enumerate(sections))
    body = "".join(f"<h2 id='section-{i}'>{escape(name)}</h2>{content}" for i, (name, content) in enumerate(sections))
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1><nav>{nav}</nav>"
            f"<h2>Summary of findings</h2><div id='summary'>{summary}</div>"
            f"<h2>Methods</h2><p id='methods'>{methods}</p>{body}<script>{_SCRIPT}</script></body></html>")
