"""The whole pipeline on CIFTI data laid out as HCP pipeline outputs (the tiny study, its
surfaces given): the same decomposition and findings as the NIfTI version of the same data,
and a report that draws every kept component and every significant edge's nodes on the
surfaces, rendered in headless Chromium."""

import json
import re
import subprocess

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from icanets.simulate import simulate_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hcp_run(tmp_path_factory):
    from icanets.runner import run_study

    study = simulate_study(tmp_path_factory.mktemp("hcp") / "tiny", "tiny", seed=0, format="cifti", layout="hcp")
    return study, run_study(study.config, study.root / "out")


@pytest.fixture(scope="module")
def nifti_run(tmp_path_factory):
    """The NIfTI version of the same data (seed 0: its planted treatment and change edges are found)."""
    from icanets.runner import run_study

    study = simulate_study(tmp_path_factory.mktemp("nifti") / "tiny", "tiny", seed=0)
    return run_study(study.config, study.root / "out")


def _significant(stats: dict) -> set:
    return {(a["name"], c["name"], h["name_i"], h["name_j"]) for a in stats["analyses"] for c in a["contrasts"]
            for h in c["significant"]}


def test_cifti_hcp_run_matches_the_nifti_run_of_the_same_data(hcp_run, nifti_run):
    """nifti_run is the NIfTI version: all but at most two components match one to one
    (|r| > 0.9), their labels agree on all but at most one, and the planted edges found are the
    same (by their true nodes)."""
    from scipy.optimize import linear_sum_assignment

    from icanets.simulate import get_preset
    from icanets.simulate._cifti import cifti_layout
    from icanets.simulate._images import brain_mask, make_grid

    study, run = hcp_run
    grid = make_grid(get_preset("tiny").resolution)
    mask = brain_mask(grid)
    order = cifti_layout(grid, mask).order
    a = nib.load(nifti_run.out / "ica" / "melodic_IC.nii.gz").get_fdata()[mask].T
    b = np.zeros((len(pd.read_csv(run.out / "ica" / "components.tsv", sep="\t")), mask.sum()))
    b[:, order] = np.asarray(nib.load(run.out / "ica" / "melodic_IC.dscalar.nii").dataobj)
    assert a.shape == b.shape
    r = np.corrcoef(np.vstack([a, b]))[: len(a), len(a):]
    i, j = linear_sum_assignment(-np.abs(r))
    close = np.abs(r[i, j]) > 0.9  # the data differ by the NIfTI's int16 storage: weak components may move
    assert close.sum() >= len(a) - 2
    ta = pd.read_csv(nifti_run.out / "ica" / "components.tsv", sep="\t")
    tb = pd.read_csv(run.out / "ica" / "components.tsv", sep="\t")
    assert (ta["label"].to_numpy()[i[close]] != tb["label"].to_numpy()[j[close]]).sum() <= 1
    ica = json.loads((run.out / "ica" / "ica.json").read_text())["settings"]
    assert ica["rules_not_applied"] == ["misregistration shadow (gradient fit and run coupling)"]
    assert ica["grayordinates"]["surfaces_missing"] == []
    # the planted edges each run finds, as pairs of true nodes (best-matching component per node)
    truth = nib.load(study.truth / "node_maps.nii.gz").get_fdata()[mask].T

    def found(out, maps):
        names = {f"IC{k + 1}": int(np.argmax(np.abs(np.corrcoef(np.vstack([maps[k], truth]))[0, 1:])))
                 for k in range(len(maps))}
        stats = json.loads((out / "analyses" / "stats.json").read_text())
        return {(name, contrast, *sorted((names[i], names[j]))) for name, contrast, i, j in _significant(stats)}

    planted = pd.read_csv(study.truth / "planted_edges.tsv", sep="\t")
    pairs = {tuple(sorted(p)) for p in planted[["node_i", "node_j"]].itertuples(index=False)}
    hits_a = {h for h in found(nifti_run.out, a) if tuple(h[2:]) in pairs}
    hits_b = {h for h in found(run.out, b) if tuple(h[2:]) in pairs}
    assert hits_a and hits_a == hits_b
    motion = pd.read_csv(run.out / "analyses" / "motion" / "runs.tsv", sep="\t")
    assert set(motion["source"]) == {"hcp"} and motion["motion_file"].str.endswith("Movement_Regressors.txt").all()


def test_cifti_report_draws_every_kept_component_and_edge_on_the_surfaces(hcp_run, tmp_path):
    from tests.report.test_report import _chromium

    _, run = hcp_run
    html = run.report.read_text()
    table = pd.read_csv(run.out / "ica" / "components.tsv", sep="\t")
    for component in table.loc[table["keep"], "component"]:
        assert f'alt="component-{int(component):03d}"' in html
    stats = run.stats
    for item in stats["posthoc"]:
        assert f'alt="edge-{item["node_i"]}-{item["node_j"]}-nodes"' in html
    assert stats["posthoc"], "the tiny study's planted edges give at least one edge to follow up"
    methods = html.split("<p id='methods'>")[1].split("</p>")[0]
    assert "CIFTI grayordinates" in methods and "cortical surface vertices" in methods
    assert "synthetic.L.midthickness.surf.gii" in methods
    assert "Maps are drawn on the cortical surfaces" in html
    nodes = pd.read_csv(run.out / "analyses" / "nodes.tsv", sep="\t")
    assert nodes[["com_x", "com_y", "com_z"]].notna().all().all()
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium: 'make test' installs Debian's chromium where it can (apt-get install chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
             "--virtual-time-budget=5000"]
    dom = subprocess.run([browser, *flags, "--dump-dom", run.report.resolve().as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    match = re.search(r'data-images-total="(\d+)" data-images-loaded="(\d+)"', dom.stdout)
    assert match and int(match.group(1)) == int(match.group(2)) > len(table.loc[table["keep"]])


def test_cifti_report_without_surfaces_says_so(hcp_run, tmp_path):
    """The same outputs with the surfaces gone: the report says the cortex cannot be drawn."""
    import shutil

    from icanets.report import build_report

    study, run = hcp_run
    copy = tmp_path / "out"
    shutil.copytree(run.out, copy)
    sidecar = copy / "ica" / "ica.json"
    data = json.loads(sidecar.read_text())
    data["settings"]["surfaces"] = []
    data["settings"]["grayordinates"]["surfaces_missing"] = data["settings"]["grayordinates"]["surface_structures"]
    sidecar.write_text(json.dumps(data))
    html = build_report(copy).read_text()
    assert "No surface was given for CIFTI_STRUCTURE_CORTEX_LEFT, CIFTI_STRUCTURE_CORTEX_RIGHT" in html
    # surfaces recorded by the run but gone since: said, and the maps drawn without them
    data["settings"]["surfaces"] = [str(tmp_path / "moved.L.midthickness.surf.gii")]
    sidecar.write_text(json.dumps(data))
    html = build_report(copy).read_text()
    assert "The surfaces the ICA stage used cannot be read now (not found:" in html
