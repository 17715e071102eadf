import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from icanets.report import build_report


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.mark.slow
def test_report_lists_the_findings(tiny_run):
    html = tiny_run.report.read_text()
    stats = tiny_run.stats
    hits = [(h["name_i"], h["name_j"]) for a in stats["analyses"] for c in a["contrasts"] for h in c["significant"]]
    summary = html.split("<h2>Methods</h2>")[0]
    if hits:
        for i, j in hits:
            assert f"<td>{i}</td><td>{j}</td>" in summary
    else:
        assert "id='no-findings'" in summary
    for analysis in stats["analyses"]:
        assert f"id='analysis-{analysis['name']}'" in html
    assert "MIGP group PCA" in html and "permutation inference" in html
    assert "Model order" in html and "alt=\"model-order\"" in html and "uncertain" in html


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium: 'make test' installs Debian's chromium where it can (apt-get install chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000"]
    url = tiny_run.report.resolve().as_uri()
    dom = subprocess.run([browser, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "Uncaught" in line or "rror" in line], console
    match = re.search(r'data-images-total="(\d+)" data-images-loaded="(\d+)"', dom.stdout)
    assert match, "the page's load handler did not run"
    total, loaded = map(int, match.groups())
    assert total > 5 and loaded == total
    review = Path(os.environ.get("ICANETS_REVIEW_DIR") or tmp_path)
    review.mkdir(parents=True, exist_ok=True)
    shot = review / "report-1400px.png"
    result = subprocess.run([browser, *flags, "--window-size=1400,6000", f"--screenshot={shot}", url],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and shot.stat().st_size > 10_000
    print(f"screenshot for review (1400 px wide): {shot}")


class _Tables(HTMLParser):
    """The report's tables as header + rows of cell text."""

    def __init__(self):
        super().__init__()
        self.tables, self._cell, self._row, self._in_head = [], None, None, False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"head": [], "rows": []})
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell, self._in_head = "", tag == "th"

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self.tables[-1]
            (table["head"].extend if self._in_head and not table["head"] else table["rows"].append)(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def _p_cells(html: str) -> int:
    """How many p-value cells the report's tables hold; none may read 0."""
    from icanets._format import is_p_column

    parser = _Tables()
    parser.feed(html)
    count = 0
    for table in parser.tables:
        for j, column in enumerate(table["head"]):
            if is_p_column(column):
                for row in table["rows"]:
                    if j < len(row) and row[j]:
                        count += 1
                        assert not re.fullmatch(r"0(\.0*)?(e[+-]?\d+)?", row[j]), (column, row)
    return count


@pytest.mark.slow
def test_no_p_value_prints_as_zero_and_the_methods_state_tails_scope_and_n(tiny_run):
    html = tiny_run.report.read_text()
    assert _p_cells(html) >= 3  # demographics (sex, age) and motion at least
    methods = html.split("<p id='methods'>")[1].split("</p>")[0]
    assert "one-tailed" in methods and "FWE via the maximum statistic over all edges, per contrast" in methods
    assert "nothing is corrected across contrasts or across the analyses" in methods
    assert "N per analysis: hc_vs_mdd_tp1" in methods and "TR 0.8 s" in methods
    assert "cannot reach p &lt; 0.05" in html  # the tiny retest: 3 subjects, 8 sign-flip patterns
    assert ("circularity" in html and "Stars on the bar plots" in html) if tiny_run.stats["posthoc"] else \
        "No edge to follow up" in html
    assert "config_sha256" not in html and "sha256:" in html and "seed" in html  # run record in provenance
    figures = tiny_run.out / "report" / "figures"
    assert (figures / "netmat.svg").exists() and (figures / "netmat.pdf").exists()
    assert not list((tiny_run.out / "report").glob("*.png")) and not (tiny_run.out / "report" / "report.html").exists()


def test_user_text_is_escaped(tmp_path):
    out = tmp_path / "out"
    (out / "analyses").mkdir(parents=True)
    evil = "<script>alert('x')</script>"
    stats = {
        "analyses": [{"name": "a1", "description": evil, "n_used": 10, "n_subset": 12,
                      "dropped": [f"sub-<b>01</b> ({evil})"], "n_perm": 100, "exhaustive": False,
                      "scheme": "free permutation", "method": "freedman-lane", "design_columns": ["Intercept", evil],
                      "contrasts": [{"name": evil, "kind": "t", "tails": 1, "df": [1, 8], "n_significant": 1,
                                     "min_p_fwe": 0.01, "fwe_threshold": 3.0, "nbs": [],
                                     "significant": [{"edge": 0, "node_i": 0, "node_j": 1, "name_i": evil,
                                                      "name_j": "N2", "statistic": 4.0, "p_unc": 0.01,
                                                      "p_fwe": 0.01, "q_fdr": 0.02}]}]}],
        "posthoc": [],
        "demographics": {"table": [{"variable": "N", evil: "3"}], "tests": [], "rm_anova": None, "notes": [evil]},
        "sessions": {},
    }
    (out / "analyses" / "stats.json").write_text(json.dumps(stats))
    (out / "dataset_description.json").write_text(json.dumps({"Name": evil}))
    html = build_report(out).read_text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "sub-&lt;b&gt;01&lt;/b&gt;" in html


@pytest.mark.slow
def test_report_shows_predictions(tiny_study, tiny_run, tmp_path):
    """A continuous CPM prediction and a binary ridge one: their figures, tables and statements."""
    import warnings

    from icanets.config import load_config
    from icanets.netmats import EdgeTable
    from icanets.pipeline import analyses_stage
    from icanets.study import load_study

    out = tmp_path / "out"
    shutil.copytree(tiny_run.out, out)
    text = tiny_study.config.read_text().replace('dataset = "bids"', f'dataset = "{tiny_study.bids}"')
    text = text.replace('mask = "mask.nii.gz"', f'mask = "{tiny_study.mask}"')
    text += ('\n[predict.change]\nsubset = "group == \'MDD\'"\nsession = "TP1"\ntarget = "hdrs_change_pct"\n'
             'model = "cpm"\nthreshold = 0.5\nconsensus = 0.5\nn_perm = 50\nn_boot = 50\n'
             '\n[predict.remission]\nsubset = "group == \'MDD\'"\nsession = "TP1"\ntarget = "remitter"\n'
             'model = "ridge"\nfolds = 3\ncv = "kfold"\nconfounds = ["age", "sex"]\nn_perm = 50\nn_boot = 50\n')
    (tmp_path / "study.toml").write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(config=load_config(tmp_path / "study.toml"))
    table = EdgeTable.load(out / "netmats", "edges_ridgep")
    stats = analyses_stage(study, table, out / "analyses", overwrite=True)
    change, remission = stats["predictions"]
    assert change["kind"] == "continuous" and remission["kind"] == "binary" and change["n_consensus"] > 0
    for name in ("change", "remission"):
        folder = out / "analyses" / "predict" / name
        assert {p.name for p in folder.iterdir()} == {"predictions.tsv", "metrics.tsv", "edges.tsv", "null.npy"}
    html = build_report(out).read_text()
    section = html.split("id='predict-change'")[1]
    assert "alt=\"predict-change\"" in section and "alt=\"predict-null-change\"" in section
    assert "alt=\"predict-edges-change\"" in section and "Consensus edges" in section
    assert "alt=\"predict-remission\"" in section and "ridge classifier" in section
    assert f"N = {change['n']}" in section and "bootstrap interval" in section and "not circular" in html
    assert "Prediction change: hdrs_change_pct (continuous)" in html  # the methods paragraph
    findings = (out / "analyses" / "findings.txt").read_text()
    assert "cpm predicting hdrs_change_pct" in findings and "ridge predicting remitter" in findings


@pytest.mark.slow
def test_post_hoc_tests_of_selected_edges_carry_the_circularity_caveat(demo_run):
    html = demo_run.report.read_text()
    assert demo_run.stats["posthoc"] and "circularity" in html and "Stars on the bar plots: * p &lt; 0.05" in html
    assert _p_cells(html) > 50  # the demo report: findings, demographics, motion, every post-hoc table
