import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from icanets.cli import main
from icanets.errors import ConfigError
from icanets.runner import run_study
from tests.conftest import DEMO_PREDICTION_PERMUTATIONS


def _digest(root: Path) -> dict:
    """Content of every output file, except each stage's timing record and the run's own record
    (``run.json``: its date and command, also quoted in the report's provenance); in text files
    the output folder's own path (recorded in provenance) is replaced by a placeholder."""
    import re

    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in ("stage.json", "run.json") and not path.name.startswith("."):
            data = path.read_bytes()
            if path.suffix in (".json", ".tsv", ".txt", ".html"):
                data = data.replace(str(root).encode(), b"<OUT>")
            if path.suffix == ".html":
                data = re.sub(rb"<p>Run of .*?</table>", b"<RUN RECORD>", data, flags=re.S)
            out[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


@pytest.fixture
def reference_run(tiny_run):
    return tiny_run


@pytest.mark.slow
def test_run_writes_every_stage_and_reruns_nothing(tiny_study, reference_run, tmp_path, capsys):
    out = reference_run.out
    assert reference_run.ran == ("ica", "netmats", "analyses", "report")
    for part in ("dataset_description.json", "ica/melodic_IC.nii.gz", "netmats/edges_ridgep.npy",
                 "analyses/stats.json", "report.html", "ica/stage.json"):
        assert (out / part).exists(), part
    assert main(["run", str(tiny_study.config), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "reused: ica, netmats, analyses, report" in printed and "Report:" in printed
    # A changed analysis setting redoes the analyses and the report only.
    config = tmp_path / "study.toml"
    text = tiny_study.config.read_text().replace('dataset = "bids"', f'dataset = "{tiny_study.bids}"')
    config.write_text(text.replace('paired = ["TP1", "TP3"]', 'paired = ["TP1", "TP3"]\nn_perm = 999'))
    (tmp_path / "mask.nii.gz").write_bytes(tiny_study.mask.read_bytes())
    result = run_study(config, out)
    assert result.ran == ("analyses", "report") and result.skipped == ("ica", "netmats")


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results(tiny_study, reference_run, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "icanets.cli", "run", str(tiny_study.config), "--out", str(out), "--quiet"]
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    killed_in = None
    while time.monotonic() < deadline and process.poll() is None:
        partial = [p.name for p in out.glob(".*.partial-*")] if out.exists() else []
        if partial and (out / "ica" / "stage.json").exists():
            killed_in = partial[0]
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    process.wait()
    if killed_in is None:
        pytest.skip("the run finished before it could be killed in the middle of a stage")
    assert not (out / "analyses" / "stats.json").exists() or not (out / "report.html").exists()
    result = run_study(tiny_study.config, out)
    assert "ica" in result.skipped
    assert _digest(out) == _digest(reference_run.out)


@pytest.mark.slow
def test_dask_local_cluster_equals_in_process(tiny_study, reference_run, tmp_path):
    pytest.importorskip("dask.distributed")
    out = tmp_path / "out"
    run_study(tiny_study.config, out, scheduler="local:2")
    assert _digest(out) == _digest(reference_run.out)


def test_bad_config_fails_before_any_work(tiny_study, tmp_path):
    config = tmp_path / "study.toml"
    text = tiny_study.config.read_text().replace('dataset = "bids"', f'dataset = "{tiny_study.bids}"')
    (tmp_path / "mask.nii.gz").write_bytes(tiny_study.mask.read_bytes())
    config.write_text(text.replace('formula = "~ group + age + sex"', 'formula = "~ group + weight"'))
    with pytest.raises(ConfigError, match=r"line \d+: \[analyses.hc_vs_mdd_tp1\] formula: .*unknown variable"):
        run_study(config, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    config.write_text(text + "\n[ica]\ndimensions = 30\n")
    with pytest.raises(ConfigError, match=r"line \d+: \[ica\] dimensions: unknown key"):
        run_study(config, tmp_path / "out")
    config.write_text(text.replace("[analyses.tp1_vs_tp2]", "[analyses.tp1_vs_tp2]\ntails = 3"))
    with pytest.raises(ConfigError, match=r"\[analyses.tp1_vs_tp2\] tails: must be 1 or 2"):
        run_study(config, tmp_path / "out")
    sidecar = json.dumps({})
    assert sidecar == "{}"


def _config_copy(tiny_study, tmp_path, extra: str) -> Path:
    config = tmp_path / "study.toml"
    text = tiny_study.config.read_text().replace('dataset = "bids"', f'dataset = "{tiny_study.bids}"')
    (tmp_path / "mask.nii.gz").write_bytes(tiny_study.mask.read_bytes())
    config.write_text(text.replace("[analyses.hc_vs_mdd_tp1]", extra + "\n[analyses.hc_vs_mdd_tp1]"))
    return config


@pytest.mark.slow
def test_entering_with_own_maps_time_series_or_edges(tiny_study, tiny_run, tmp_path):
    ref = tiny_run.out
    (tmp_path / "a").mkdir()
    maps = _config_copy(tiny_study, tmp_path / "a", f'[inputs]\nmelodic_ic = "{ref / "ica" / "melodic_IC.nii.gz"}"\n'
                        f'labels = "{ref / "ica" / "labels.txt"}"\n')
    result = run_study(maps, tmp_path / "a" / "out")
    assert result.ran[:2] == ("ica", "netmats")
    ours = (tmp_path / "a" / "out" / "ica" / "labels.txt").read_text().splitlines()[-1]
    assert ours == (ref / "ica" / "labels.txt").read_text().splitlines()[-1]
    (tmp_path / "b").mkdir()
    series = _config_copy(tiny_study, tmp_path / "b", f'[inputs]\ndr_stage1 = "{ref / "ica" / "dr_stage1"}"\n'
                          f'subjects = "{ref / "ica" / "subjects.tsv"}"\nlabels = "{ref / "ica" / "labels.txt"}"\n')
    result = run_study(series, tmp_path / "b" / "out")
    assert result.ran[0] == "netmats" and not (tmp_path / "b" / "out" / "ica").exists()
    import numpy as np

    np.testing.assert_array_equal(np.load(tmp_path / "b" / "out" / "netmats" / "edges_ridgep.npy"),
                                  np.load(ref / "netmats" / "edges_ridgep.npy"))
    (tmp_path / "c").mkdir()
    edges = _config_copy(tiny_study, tmp_path / "c", f'[inputs]\nedges = "{ref / "netmats" / "edges_ridgep.npy"}"\n')
    result = run_study(edges, tmp_path / "c" / "out")
    assert result.ran[0] == "analyses"
    assert json.loads((tmp_path / "c" / "out" / "analyses" / "stats.json").read_text())["analyses"] == \
        json.loads((ref / "analyses" / "stats.json").read_text())["analyses"]


@pytest.mark.slow
def test_demo_run_finds_the_planted_effects_in_the_right_analyses(demo_study, demo_run):
    """From BIDS images to findings: each planted edge, and nothing else, in its analyses."""
    import nibabel as nib
    import numpy as np
    import pandas as pd

    mask = np.asarray(nib.load(demo_study.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(demo_study.truth / "node_maps.nii.gz").dataobj)[mask].T
    ic = np.asarray(nib.load(demo_run.out / "ica" / "melodic_IC.nii.gz").dataobj)[mask].T
    best = np.abs(np.corrcoef(np.vstack([true, ic]))[: len(true), len(true):]).argmax(axis=1)
    node_of = {f"IC{b + 1}": n for n, b in enumerate(best)}
    planted = pd.read_csv(demo_study.truth / "planted_edges.tsv", sep="\t").set_index("effect")
    pair = {effect: {int(planted.loc[effect, "node_i"]), int(planted.loc[effect, "node_j"])}
            for effect in planted.index}
    found = {}
    for analysis in demo_run.stats["analyses"]:
        for contrast in analysis["contrasts"]:
            found[(analysis["name"], contrast["name"])] = [{node_of.get(h["name_i"]), node_of.get(h["name_j"])}
                                                           for h in contrast["significant"]]
    assert pair["group"] in found[("hc_vs_mdd_tp1", "HC>MDD")]
    assert pair["treatment"] in found[("tp1_vs_tp3", "TP1>TP3")]
    assert pair["interaction"] in found[("delta_remit", "nonremit>remit")]
    # At TP1 the interaction is a small effect (the true maps give t of about 4 to 5 against an FWE
    # threshold of about 4.3 over 378 edges at N = 25): its edge must come first, FWE-significant or not.
    remit = pd.read_csv(demo_run.out / "analyses" / "analyses" / "remit_tp1" / "results.tsv", sep="\t")
    top = remit[remit["contrast"] == "remit>nonremit"].sort_values("statistic", ascending=False).iloc[0]
    assert {node_of.get(top["name_i"]), node_of.get(top["name_j"])} == pair["interaction"]
    assert top["p_unc"] < 0.001 and top["p_fwe"] < 0.1
    planted_pairs = list(pair.values())
    false_positives = sum(1 for hits in found.values() for h in hits if h not in planted_pairs)
    assert false_positives <= 1
    summary = __import__("icanets.runner", fromlist=["closing_summary"]).closing_summary(demo_run)
    assert "hc_vs_mdd_tp1 (N = 50)" in summary and "Report:" in summary
    # The demo declares one prediction: its 25 patients with TP3, every metric with an interval and a p.
    assert "Cross-validated predictions:\n  hdrs_change_from_tp1 (N = 25): hdrs_change_pct by cpm, r = " in summary
    (prediction,) = demo_run.stats["predictions"]
    assert prediction["n"] == 25 and prediction["n_perm"] == DEMO_PREDICTION_PERMUTATIONS
    # make demo itself runs the prediction at its default 1000 permutations (the fixture asks for fewer)
    from icanets.config import load_config

    assert load_config(demo_study.config).predict["hdrs_change_from_tp1"].n_perm == 1000
    assert all(np.isfinite(m["value"]) and 0 < m["p"] <= 1 and m["ci"][0] <= m["value"] <= m["ci"][1]
               for m in prediction["metrics"].values())


def test_stage_keys_follow_the_code_each_stage_runs(tmp_path):
    # Issue 12.8: the key held the package version but not its code, so an edited install reused stale stages.
    import shutil

    import icanets
    from icanets.runner import code_digest

    package = tmp_path / "icanets"
    shutil.copytree(Path(icanets.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {stage: code_digest(stage, package) for stage in ("ica", "netmats", "analyses", "report")}
    assert before["ica"] == code_digest("ica")  # the copy is the installation
    estimators = package / "netmats" / "estimators.py"
    estimators.write_text(estimators.read_text() + "\n# changed\n")
    after = {stage: code_digest.__wrapped__(stage, package) for stage in before}
    assert after["netmats"] != before["netmats"] and after["analyses"] != before["analyses"]
    assert after["ica"] == before["ica"] and after["report"] == before["report"]


def test_second_run_on_a_locked_folder_is_refused_and_stale_partials_go(tiny_study, reference_run, capsys):
    # Issue 12.13: two runs on one output folder both computed everything; the last writer won.
    out = reference_run.out
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom icanets.io.atomic import folder_lock\n"
                               "with folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)\n",
                               str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert main(["run", str(tiny_study.config), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"output folder {out} is in use by another icanets run (pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
    stale = out / ".netmats.partial-999999"
    stale.mkdir()
    (stale / "edges_ridgep.npy").write_bytes(b"half-written")
    assert main(["run", str(tiny_study.config), "--out", str(out)]) == 0
    assert not stale.exists() and "removed .netmats.partial-999999" in capsys.readouterr().err
