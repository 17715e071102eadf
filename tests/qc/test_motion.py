"""Head motion: readers of the three layouts, FD against an independent computation and
fMRIPrep's column, exclusion rules, mean FD as a covariate, the motion tests and QC-FC, and
the errors for bad motion files."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icanets.config import config_from_dict, load_config
from icanets.errors import BIDSError, ConfigError, StudyError
from icanets.glm.analysis import analysis_variables
from icanets.io.motion import find_motion_file, read_motion
from icanets.qc import MotionSettings, framewise_displacement, qc_fc, run_motion
from icanets.simulate import get_preset, simulate_study
from icanets.study import load_study


def _power_fd(params, radius=50.0):
    """Power et al. 2012 written out frame by frame, apart from the vectorised code."""
    fd = [0.0]
    for t in range(1, len(params)):
        total = 0.0
        for k in range(6):
            step = abs(params[t][k] - params[t - 1][k])
            total += step * (radius if k >= 3 else 1.0)
        fd.append(total)
    return np.array(fd)


def _params(rng, n=80):
    steps = rng.normal(0, 0.03, (n, 6))
    steps[:, 3:] /= 50.0
    steps[17] += 0.8
    return np.cumsum(steps, axis=0)


def test_fd_equals_an_independent_computation(rng):
    params = _params(rng)
    assert np.max(np.abs(framewise_displacement(params) - _power_fd(params.tolist()))) < 1e-10
    assert np.max(np.abs(framewise_displacement(params, 80.0) - _power_fd(params.tolist(), 80.0))) < 1e-10


def test_the_three_layouts_read_to_the_same_parameters(tmp_path, rng):
    params = _params(rng)
    fd = framewise_displacement(params)
    names = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    frame = pd.DataFrame(params, columns=names).assign(framewise_displacement=fd)
    frame.loc[0, "framewise_displacement"] = np.nan
    func = tmp_path / "sub-01" / "func"
    func.mkdir(parents=True)
    bold = func / "sub-01_task-rest_space-MNI_desc-preproc_bold.nii.gz"
    frame.to_csv(func / "sub-01_task-rest_desc-confounds_timeseries.tsv", sep="\t", index=False, na_rep="n/a",
                 float_format="%.17g")
    path, kind = find_motion_file(bold, {"sub": "01", "task": "rest", "space": "MNI", "desc": "preproc"})
    fmriprep = read_motion(path, kind, n_volumes=len(params))
    assert kind == "fmriprep" and np.allclose(fmriprep.params, params, atol=1e-11)
    assert fmriprep.fd[0] == 0.0 and np.max(np.abs(fmriprep.fd[1:] - fd[1:])) < 1e-10  # n/a first row allowed

    hcp = tmp_path / "hcp" / "Movement_Regressors.txt"
    hcp.parent.mkdir()
    table = np.column_stack([params[:, :3], np.rad2deg(params[:, 3:]), np.gradient(params, axis=0)])
    hcp.write_text("\n".join("  ".join(f"{v:.12f}" for v in row) for row in table) + "\n")
    assert find_motion_file(hcp.parent / "rfMRI_REST1_LR_Atlas.dtseries.nii", {}, "auto") == (hcp, "hcp")
    assert np.allclose(read_motion(hcp, "hcp").params, params, atol=1e-9)

    par = tmp_path / "sub-01_task-rest_bold.par"
    np.savetxt(par, np.column_stack([params[:, 3:], params[:, :3]]), fmt="%.12f")
    assert find_motion_file(tmp_path / "sub-01_task-rest_bold.nii.gz", {}, "fsl") == (par, "fsl")
    assert np.allclose(read_motion(par, "fsl").params, params, atol=1e-11)

    custom = tmp_path / "custom.tsv"
    pd.DataFrame(np.column_stack([params[:, :3], np.rad2deg(params[:, 3:])]),
                 columns=["x", "y", "z", "pitch", "roll", "yaw"]).to_csv(custom, sep="\t", index=False)
    got = read_motion(custom, "fmriprep", columns=["x", "y", "z", "pitch", "roll", "yaw"], rotations="degrees")
    assert np.allclose(got.params, params, atol=1e-9)


def test_bad_motion_files_are_named_errors(tmp_path, rng):
    params = _params(rng, 20)
    good = pd.DataFrame(params, columns=["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"])
    path = tmp_path / "c.tsv"
    good.to_csv(path, sep="\t", index=False)
    with pytest.raises(BIDSError, match=r"c.tsv has 20 rows but its run has 25 volumes"):
        read_motion(path, "fmriprep", n_volumes=25)
    good.drop(columns=["rot_z"]).to_csv(path, sep="\t", index=False)
    with pytest.raises(BIDSError, match=r"c.tsv lacks column\(s\) rot_z"):
        read_motion(path, "fmriprep")
    bad = good.astype(object)
    bad.loc[3, "trans_y"] = "n/a"
    bad.to_csv(path, sep="\t", index=False)
    with pytest.raises(BIDSError, match=r"'trans_y' has missing values \(n/a\) at row\(s\) 4"):
        read_motion(path, "fmriprep")
    bad.loc[3, "trans_y"] = "oops"
    bad.to_csv(path, sep="\t", index=False)
    with pytest.raises(BIDSError, match=r"'trans_y' row 4 is not a number: 'oops'"):
        read_motion(path, "fmriprep")
    par = tmp_path / "r.par"
    par.write_text("0 0 0 0 0\n")
    with pytest.raises(BIDSError, match="at least 6 columns"):
        read_motion(par, "fsl")
    with pytest.raises(ConfigError, match=r"\[motion\] source.*must be one of auto, fmriprep, hcp, fsl, none"):
        config_from_dict({"motion": {"source": "aroma"}})
    with pytest.raises(ConfigError, match="must name six columns"):
        config_from_dict({"motion": {"columns": ["a", "b"]}})
    wrong_fd = good.assign(framewise_displacement=framewise_displacement(params) * 2)
    with pytest.raises(StudyError, match="differs from the FD computed"):
        run_motion(params, MotionSettings(), file_fd=wrong_fd["framewise_displacement"].to_numpy(), where="c.tsv")


def test_qc_fc_equals_pingouin_partial_correlation(rng):
    pingouin = pytest.importorskip("pingouin")
    n = 40
    frame = pd.DataFrame({"fd": rng.gamma(2, 0.08, n), "age": rng.uniform(20, 60, n),
                          "sex": rng.integers(0, 2, n).astype(float)})
    edges = rng.normal(size=(n, 3)) + np.outer(frame["fd"], [3.0, 0.0, -1.0]) + 0.01 * frame[["age"]].to_numpy()
    result = qc_fc(edges, frame["fd"].to_numpy(), frame[["age", "sex"]].to_numpy(), names=("age", "sex"))
    for e in range(3):
        ref = pingouin.partial_corr(data=frame.assign(edge=edges[:, e]), x="edge", y="fd", covar=["age", "sex"])
        assert result.r[e] == pytest.approx(float(ref["r"].iloc[0]), abs=1e-10)
        assert result.p[e] == pytest.approx(float(ref["p_val" if "p_val" in ref else "p-val"].iloc[0]), rel=1e-6)


def _study(tmp_path, name, **changes):
    preset = get_preset("tiny").with_changes(n_controls=16, n_patients=20, n_tp2=10, n_tp3=16, **changes)
    return simulate_study(tmp_path / name, preset, seed=1)


def test_a_planted_motion_difference_is_reported_and_no_difference_is_not(tmp_path):
    from icanets.posthoc.motion import motion_table

    for ratio, significant in ((2.0, True), (1.0, False)):
        sim = _study(tmp_path, f"r{ratio}", motion_group_ratio=ratio)
        study = load_study(config=config_from_dict({"study": {"dataset": str(sim.bids)},
                                                    "sessions": {"roles": {"TP1": "ses-1"}}}))
        assert (study.motion["fd_source"] == "file").all() and study.motion["fd_file_difference"].max() < 1e-8
        table = motion_table(study.sessions, study.groups, session_labels=study.session_labels, baseline="ses-1",
                             patients=None, roles={"ses-1": "TP1"})
        test = table["group_test"]
        assert (test["p"] < 0.05) is significant, test
        if significant:
            assert test["means"]["MDD"] > test["means"]["HC"] and test["statistic"] < 0  # HC - MDD


def test_exclusion_covariate_and_report_end_to_end(tmp_path):
    """The exclusion rule drops exactly the runs whose mean FD (from their files) is over it,
    names why in every list of who was left out, and mean FD as a covariate enters the design,
    the report and its methods paragraph."""
    from icanets.runner import run_study

    sim = _study(tmp_path, "study", motion_group_ratio=2.0)
    expected = {}
    for path in sorted(sim.bids.glob("sub-*/ses-*/func/*_desc-confounds_timeseries.tsv")):
        fd = pd.read_csv(path, sep="\t", na_values="n/a")["framewise_displacement"].to_numpy()[1:]
        expected[path.name.split("_desc-")[0]] = fd.mean()
    limit = float(np.sort(list(expected.values()))[-4])  # the three largest exceed it
    out_runs = {k for k, v in expected.items() if v > limit}
    text = sim.config.read_text().replace(
        'formula = "~ group + age + sex"', 'formula = "~ group + age + sex + mean_fd"', 1)
    text += f"\n[motion]\nmax_mean_fd = {limit!r}\n"
    sim.config.write_text(text)
    result = run_study(sim.config)
    study = load_study(config=load_config(sim.config))
    assert {r.name.split("_space-")[0] for r in study.runs} == set(expected) - out_runs
    stats = json.loads((result.out / "analyses" / "stats.json").read_text())
    motion = stats["motion"]
    assert motion["n_excluded"] == 3 and {e["run"].split("_space-")[0] for e in motion["excluded"]} == out_runs
    assert all("mean FD" in e["excluded"] and f"> {limit:g} mm" in e["excluded"] for e in motion["excluded"])
    group = next(a for a in stats["analyses"] if a["name"] == "hc_vs_mdd_tp1")
    assert "mean_fd" in group["design_columns"] and motion["covariate_in"] == ["hc_vs_mdd_tp1"]
    for subject in {e["participant_id"] for e in motion["excluded"] if e["session_id"] == "ses-1"}:
        if study.exclusion_of(subject, "ses-1"):  # every TP1 run of the subject excluded
            assert any(d.startswith(subject) and "excluded for motion: mean FD" in d for d in group["dropped"])
    assert any("excluded for motion: mean FD" in d for a in stats["analyses"] for d in a["dropped"])
    missing = study.summary().missing
    assert missing["what"].str.startswith("excluded for motion").sum() >= 1
    html = result.report.read_text()
    assert "Head motion" in html and "mean FD a covariate in hc_vs_mdd_tp1" in html
    assert "runs excluded when mean FD &gt;" in html and "QC-FC" in html
    sessions = pd.read_csv(result.out / "analyses" / "motion" / "sessions.tsv", sep="\t")
    assert {"mean_fd", "group", "n_runs_excluded"} <= set(sessions.columns)
    # DVARS of the images, against a computation written out here
    import nibabel as nib

    table = pd.read_csv(result.out / "ica" / "dvars.tsv", sep="\t")
    mask = np.asarray(nib.load(result.out / "ica" / "mask.nii.gz").dataobj)[..., 0] > 0
    first = study.runs[0]
    data = np.asarray(nib.load(first.path).dataobj, dtype=np.float64)[mask]  # voxels x time
    step = np.sqrt(np.mean(np.diff(data, axis=1) ** 2, axis=0))
    row = table[table["run"] == first.name].iloc[0]
    assert row["mean_dvars"] == pytest.approx(step.mean(), rel=1e-5) and row["max_dvars"] == pytest.approx(
        step.max(), rel=1e-5)
    assert "DVARS (root mean square" in html


def test_qc_fc_shows_a_planted_motion_bias(tmp_path):
    """With the true maps given (the tiny grid cannot carry group ICA under strong motion
    noise), a planted motion-FC bias shows in the full-correlation QC-FC; without it, about
    5 % of edges. (What each cleaning strategy does to it: benchmarks/bench_qcfc.py.)"""
    from icanets.runner import run_study

    fractions = {}
    for bias in (0.0, 2.0):
        sim = _study(tmp_path, f"b{bias}", motion_fc_bias=bias, n_nodes=12)
        sim.config.write_text(sim.config.read_text() + '\n[inputs]\nmelodic_ic = "truth/node_maps.nii.gz"\n')
        stats = json.loads((run_study(sim.config).out / "analyses" / "stats.json").read_text())
        tp1 = {q["edges"]: q for q in stats["motion"]["qcfc"] if q["session"] == "TP1"}
        assert set(tp1) == {"corr", "ridgep"} and tp1["corr"]["distance_rho"] is not None
        fractions[bias] = tp1["corr"]["fraction_p_below_0.05"]
    assert fractions[0.0] < 0.1 and fractions[2.0] > max(0.12, 2 * fractions[0.0]), fractions


def test_mean_fd_needs_the_analysis_session():
    from types import SimpleNamespace

    from icanets.glm.design import DesignError

    idx = pd.MultiIndex.from_tuples([("s1", "ses-1")], names=["participant_id", "session_id"])
    sessions = pd.DataFrame({"mean_fd": [0.1]}, index=idx)
    variables = pd.DataFrame({"age": [30.0]}, index=pd.Index(["s1"], name="participant_id"))
    spec = SimpleNamespace(name="a", formula="~ mean_fd", session=None, difference=None)
    with pytest.raises(DesignError, match="per-session measure 'mean_fd' in its formula needs the analysis' session"):
        analysis_variables(spec, variables, sessions)


def test_censoring_and_denoising_reach_every_stage(tmp_path):
    """Censored volumes never reach dual regression or the netmats (whose AR(1) null is drawn at
    the kept lengths), and nilearn's confounds are regressed out before the time series."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    from icanets.netmats.ztransform import fslnets_z_scale
    from icanets.runner import run_study

    sim = _study(tmp_path, "clean", motion_group_ratio=2.0)
    import re

    base = re.sub(r'desc = "preproc"\n(min_volumes = \d+.*\n)?', 'desc = "preproc"\nmin_volumes = 30\n',
                  sim.config.read_text(), count=1)
    # The subject here is motion, not the model order: on a study this small the split-half order
    # is 6 or 12 (10 planted nodes) depending on the cleaning, and at 6 too few nodes are kept.
    base += "\n[ica]\ndimension = 12\n"
    sim.config.write_text(base + "\n[motion]\ncensor = true\nmin_volumes_kept = 30\n")
    result = run_study(sim.config, tmp_path / "censored")
    study = load_study(config=load_config(sim.config))
    kept = study.motion[study.motion["excluded"] == ""]
    subjects = pd.read_csv(result.out / "ica" / "subjects.tsv", sep="\t")
    lengths = {}
    for row in subjects.itertuples():
        name = Path(row.source).name.removesuffix(".nii.gz")
        series = np.loadtxt(result.out / "ica" / "dr_stage1" / f"dr_stage1_subject{row.index:05d}.txt", ndmin=2)
        lengths[name] = series.shape[0]
        fd = study.motion.loc[name, "n_volumes"] - study.motion.loc[name, "n_high_motion"]
        assert series.shape[0] == fd == kept.loc[name, "n_volumes_analysed"]
    assert sum(study.motion["n_high_motion"][study.motion["excluded"] == ""]) > 0  # something was censored
    nets = json.loads((result.out / "netmats" / "edges_ridgep.json").read_text())
    n_nodes = len(pd.read_csv(result.out / "netmats" / "nodes.tsv", sep="\t"))
    shapes = [(lengths[Path(s).name.removesuffix(".nii.gz")], n_nodes) for s in subjects["source"]]
    assert nets["z_scale"] == pytest.approx(fslnets_z_scale(shapes, nets["ar1"], "partial", seed=nets["seed"],
                                                            null_runs=nets["null_runs"]), rel=1e-12)
    assert "censored" in result.report.read_text()

    sim.config.write_text(base + "\n[motion]\ndenoise = \"simple\"\ndenoise_options = { motion = \"basic\" }\n")
    result = run_study(sim.config, tmp_path / "denoised")
    subjects = pd.read_csv(result.out / "ica" / "subjects.tsv", sep="\t")
    for row in subjects.head(3).itertuples():
        series = np.loadtxt(result.out / "ica" / "dr_stage1" / f"dr_stage1_subject{row.index:05d}.txt", ndmin=2)
        confounds, _ = load_confounds_strategy(row.source, denoise_strategy="simple", motion="basic")
        c = confounds.to_numpy() - confounds.to_numpy().mean(axis=0)
        assert np.abs(c.T @ (series - series.mean(axis=0))).max() < 1e-6 * np.abs(c).sum() * np.abs(series).max()
    html = result.report.read_text()
    assert "load_confounds_strategy(&#x27;simple&#x27;, motion=&#x27;basic&#x27;)" in html


def test_cleaning_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match=r"\[motion\] denoise.*must be one of none, simple, scrubbing"):
        config_from_dict({"motion": {"denoise": "24P"}})
    with pytest.raises(ConfigError, match="given without a denoise strategy"):
        config_from_dict({"motion": {"denoise_options": {"motion": "full"}}})
    folder = tmp_path / "hcp"
    folder.mkdir()
    (folder / "Movement_Regressors.txt").write_text("0 0 0 0 0 0\n" * 10)
    from icanets.qc.denoise import run_cleaning

    with pytest.raises(StudyError, match="load_confounds_strategy\\('simple'\\) failed"):
        run_cleaning(folder / "rfMRI_REST1_LR_Atlas.dtseries.nii", 10, np.zeros(10), strategy="simple")


def test_a_strategy_that_leaves_too_few_degrees_of_freedom_is_refused(tiny_study):
    from icanets.qc.denoise import run_cleaning

    bold = sorted(tiny_study.bids.glob("sub-*/ses-*/func/*_bold.nii.gz"))[0]
    n = int(__import__("nibabel").load(str(bold)).shape[3])
    with pytest.raises(StudyError, match=r"'simple' strategy regresses 26 confounds out of \d+ volumes"):
        run_cleaning(bold, n, None, strategy="simple")
    light = run_cleaning(bold, n, None, strategy="simple", options={"motion": "basic"})
    assert light.confounds.shape == (n, 8) and light.keep is None and np.isfinite(light.confounds).all()


def test_qc_fc_leaves_out_a_subject_without_a_covariate_instead_of_coding_it(rng):
    from icanets.posthoc.motion import study_qc_fc

    subjects = [f"sub-{i:02d}" for i in range(30)]
    idx = pd.MultiIndex.from_tuples([(s, "ses-1") for s in subjects], names=["participant_id", "session_id"])
    sessions = pd.DataFrame({"mean_fd": rng.gamma(2, 0.1, 30), "n_runs": 1}, index=idx)
    sex = np.array(["F", "M"] * 15, dtype=object)
    sex[4] = None
    variables = pd.DataFrame({"age": rng.uniform(20, 60, 30), "sex": sex}, index=pd.Index(subjects, name="participant_id"))
    rows = pd.DataFrame({"participant_id": subjects, "session_id": "ses-1"})
    [entry] = study_qc_fc(rng.normal(size=(30, 5)), rows, sessions, variables, covariates=("age", "sex", "weight"))
    assert entry["n"] == 29 and entry["n_left_out"] == 1 and entry["covariates"] == ["age", "sex"]
