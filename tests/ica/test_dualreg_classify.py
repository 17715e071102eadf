import json
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from icanets.dualreg import stage1, stage2
from icanets.ica.data import ICAError, load_mask, read_run, variance_mask


def test_stage1_is_spatial_ols_with_demeaning(rng):
    maps = rng.normal(size=(4, 300)) + 1.0
    data = rng.normal(size=(20, 300)) + 5.0
    tc = stage1(data, maps)
    x = np.column_stack([np.ones(300), maps.T])
    for t in range(20):
        fit = sm.OLS(data[t], x).fit()
        np.testing.assert_allclose(tc[t], fit.params[1:], rtol=1e-9, atol=1e-12)


def test_stage2_matches_statsmodels(rng):
    tc = rng.normal(size=(60, 3))
    data = tc @ rng.normal(size=(3, 50)) + rng.normal(size=(60, 50))
    result = stage2(data, tc)
    x = (tc - tc.mean(axis=0)) / tc.std(axis=0)
    for v in range(0, 50, 7):
        fit = sm.OLS(data[:, v] - data[:, v].mean(), x).fit()
        np.testing.assert_allclose(result.betas[:, v], fit.params, rtol=1e-9)
        # statsmodels counts no intercept here; ours removes the mean (one more df)
        t_ours = result.tstats[:, v] * np.sqrt((60 - 3) / (60 - 4))
        np.testing.assert_allclose(t_ours, fit.tvalues, rtol=1e-9)


def test_stage2_betas_alone_equal_the_full_fit(rng):
    tc = rng.normal(size=(60, 3))
    data = tc @ rng.normal(size=(3, 50)) + rng.normal(size=(60, 50))
    alone = stage2(data, tc, tstats=False)
    assert alone.tstats is None
    np.testing.assert_array_equal(alone.betas, stage2(data, tc).betas)


def test_float32_runs_give_the_float64_regressions(rng):
    """Raw BOLD units (mean image ~10^4, fluctuations ~1 %): stage 1 and stage 2 of float32 data
    agree with float64 to ~1e-6 of the fluctuations' scale (each block is centred before its
    float32 product, the sums are float64), and maps prepared once give the same bits."""
    from icanets.dualreg import stage1_regressors

    v = 9000  # more than two blocks
    maps = rng.laplace(size=(5, v)) * (rng.random((5, v)) < 0.2)
    tc = rng.normal(size=(80, 5))
    data = 1e4 + 300 * rng.random(v) + 100 * tc @ maps + 50 * rng.normal(size=(80, v))
    single = data.astype(np.float32)
    exact = stage1(single.astype(np.float64), maps)
    np.testing.assert_array_equal(stage1(single, stage1_regressors(maps)), stage1(single, maps))
    low = stage1(single, maps)
    assert low.dtype == np.float64
    assert np.abs(low - exact).max() <= 1e-5 * exact.std()
    assert np.abs(low - low.mean(0) - (exact - exact.mean(0))).max() <= 1e-5 * exact.std()
    full, half = stage2(single.astype(np.float64), exact), stage2(single, exact)
    assert np.abs(half.betas - full.betas).max() <= 1e-5 * np.abs(full.betas).max()
    assert np.abs(half.tstats - full.tstats).max() <= 1e-4 * np.abs(full.tstats).max()


def test_dependent_maps_are_an_error(rng):
    maps = rng.normal(size=(3, 100))
    maps[2] = maps[0] * 2 + maps[1]
    with pytest.raises(ICAError, match="linearly dependent"):
        stage1(rng.normal(size=(10, 100)), maps)


def test_variance_mask_and_grid_checks(tmp_path, rng):
    data = rng.normal(size=(4, 4, 3, 10)).astype(np.float32)
    data[0, 0, 0] = 7.0  # constant voxel
    a = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(a))
    data2 = data.copy()
    data2[1, 1, 1] = 0.0
    b = tmp_path / "b.nii.gz"
    nib.save(nib.Nifti1Image(data2, np.eye(4)), str(b))
    space = variance_mask([a, b])
    assert space.n_voxels == 48 - 2
    assert read_run(a, space).shape == (10, 46)
    nib.save(nib.Nifti1Image(np.ones((5, 4, 3), np.uint8), np.eye(4)), str(tmp_path / "m.nii.gz"))
    with pytest.raises(ICAError, match="is not on the grid of the runs"):
        load_mask(tmp_path / "m.nii.gz", a)
    back = space.from_image(_save(space.to_image(rng.normal(size=(2, 46))), tmp_path / "maps.nii.gz"))
    assert back.shape == (2, 46)


def _save(img, path):
    nib.save(img, str(path))
    return path


@pytest.mark.slow
def test_demo_recovery_and_classification(demo_study, demo_run):
    """The demo study, realistic nuisance on: planted maps recovered by distinct kept components,
    no true node rejected, artifacts flagged, node time courses recovered."""
    from icanets.simulate._evaluate import match_maps

    sim = demo_study
    out = demo_run.out / "ica"
    mask = np.asarray(nib.load(sim.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(sim.truth / "node_maps.nii.gz").dataobj)[mask].T
    artifacts = np.asarray(nib.load(sim.truth / "artifact_maps.nii.gz").dataobj)[mask].T
    ic = np.asarray(nib.load(out / "melodic_IC.nii.gz").dataobj)[mask].T
    table = pd.read_csv(out / "components.tsv", sep="\t")
    labels, keep = table["label"].to_numpy(), table["keep"].to_numpy()
    kept = match_maps(true, ic, candidates=keep)
    print(f"{len(ic)} components; nodes recovered by kept components at r >= 0.8: {kept.recovered().sum()}/"
          f"{len(true)} (r {np.round(np.sort(kept.assigned_r), 2)})")
    assert kept.recovered().mean() >= 0.9
    anything = match_maps(true, ic)
    assert not any(labels[anything.best[n]] == "noise" for n in range(len(true)) if anything.best_r[n] >= 0.8)
    found = match_maps(artifacts, ic)
    flagged = [labels[found.best[a]] != "signal" for a in range(len(artifacts)) if found.best_r[a] >= 0.8]
    assert len(flagged) >= 2 and all(flagged)
    # Node time courses: as close to the truth as dual regression on the true maps gets them.
    from icanets.ica.data import load_mask, read_run
    from icanets.pipeline import spatial_regressors

    space = load_mask(sim.mask, sorted(sim.bids.rglob("*_bold.nii.gz"))[0])
    oracle_maps = spatial_regressors(np.vstack([true, artifacts]), 3.0)
    subjects = pd.read_csv(out / "subjects.tsv", sep="\t")
    r, r_oracle = [], []
    for row in subjects.itertuples():
        stem = row.source.split("/")[-1].replace("_bold.nii.gz", "")
        truth = np.load(sim.truth / "timeseries" / f"{stem}_nodes.npy")
        tc = np.load(out / "dr_stage1" / f"{stem}_timeseries.npy")
        r += [abs(np.corrcoef(truth[:, k], tc[:, kept.assigned[k]])[0, 1]) for k in range(len(true))]
        oracle = stage1(read_run(row.source, space), oracle_maps)
        r_oracle += [abs(np.corrcoef(truth[:, k], oracle[:, k])[0, 1]) for k in range(len(true))]
    print(f"stage-1 time courses vs truth: median r {np.median(r):.3f} (true maps: {np.median(r_oracle):.3f})")
    assert np.median(r) >= 0.9 * np.median(r_oracle)
    sidecar = json.loads((out / "ica.json").read_text())
    assert sidecar["settings"]["dimension_used"] == len(ic)
    order = json.loads((out / "model_order.json").read_text())
    assert order["method"] == "reproducibility" and order["dimension"] == len(ic)
    assert set(order["estimates"]) == {"reproducibility", "consistency", "laplace", "bic", "mdl", "aic"}
    curve = order["reproducibility"]
    # The order leaves room for the maps the classifier's spatial rules call noise at the best dimension.
    assert curve["nuisance"] is not None and curve["nuisance"] >= 1  # the planted rim artifact at least
    assert order["dimension"] == curve["best"] + int(np.ceil(curve["nuisance"] - 1e-9))
    # The best dimension: the best score averaged over the dimensions within max(2, d / 10) of each.
    dims = curve["dimensions"]
    scores = {d: c - 0.5 * (d - c) for d, c in zip(dims, curve["reproduced"])}
    smoothed = [np.mean([scores[e] for e in dims if abs(e - d) <= max(2, 0.1 * d)]) for d in dims]
    assert curve["best"] == dims[int(np.argmax(smoothed))] and curve["window"] == 0.1
    assert dims[:36] == list(range(5, 41))[:len(dims)]  # every dimension up to 40
    assert table["stability"].notna().all() and table["stability"].median() > 0.8


def test_ica_and_dualreg_commands_on_tiny(tiny_study, tmp_path, capsys):
    from icanets.cli import main

    assert main(["ica", str(tiny_study.config), "--out", str(tmp_path / "ica"), "--dim", "8"]) == 0
    printed = capsys.readouterr().out
    assert "Group ICA of" in printed and "8 components" in printed
    table = pd.read_csv(tmp_path / "ica" / "components.tsv", sep="\t")
    assert list(table["component"]) == list(range(1, 9)) and set(table["label"]) <= {"signal", "uncertain", "noise"}
    labels = (tmp_path / "ica" / "labels.txt").read_text().splitlines()
    assert labels[-1] == str([int(c) for c, keep in zip(table["component"], table["keep"]) if not keep])
    assert len(labels) == 8 + 2 and labels[1].startswith("1, ")
    n_runs = json.loads((tiny_study.truth / "truth.json").read_text())["n_runs"]
    assert len(list((tmp_path / "ica" / "dr_stage1").glob("dr_stage1_subject*.txt"))) == n_runs
    assert main(["dualreg", str(tiny_study.config), "--maps", str(tmp_path / "ica" / "melodic_IC.nii.gz"),
                 "--out", str(tmp_path / "dr"), "--stage2"]) == 0
    a = np.loadtxt(tmp_path / "dr" / "dr_stage1_subject00003.txt")
    b = np.loadtxt(tmp_path / "ica" / "dr_stage1" / "dr_stage1_subject00003.txt")
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * np.abs(b).max())  # maps stored as float32
    assert nib.load(tmp_path / "dr" / "dr_stage2_subject00003.nii.gz").shape[3] == 8
    (tmp_path / "fix.txt").write_text("[1, 2, 9]\n")
    assert main(["ica", str(tiny_study.config), "--out", str(tmp_path / "ica2"), "--dim", "8",
                 "--labels", str(tmp_path / "fix.txt")]) == 2
    assert "names component(s) [9] that do not exist (valid: 1..8)" in capsys.readouterr().err


def test_group_ica_on_cifti(tmp_path, rng):
    from icanets.pipeline import ICASettings, ica_stage
    from icanets.study import load_study
    from tests._bids_factory import write_participants

    n_vertices, k = 400, 4
    sources = rng.laplace(size=(k, n_vertices)) * (rng.random((k, n_vertices)) < 0.25)
    models = nib.cifti2.BrainModelAxis.from_surface(np.arange(n_vertices), n_vertices, "CortexLeft")
    write_participants(tmp_path, [{"participant_id": f"sub-0{i}"} for i in range(1, 4)])
    for i in range(1, 4):
        data = (rng.normal(size=(100, k)) @ sources + 0.3 * rng.normal(size=(100, n_vertices))).astype(np.float32)
        series = nib.cifti2.SeriesAxis(0.0, 0.72, 100, "SECOND")
        img = nib.Cifti2Image(data, header=nib.cifti2.Cifti2Header.from_axes((series, models)))
        img.nifti_header.set_intent("ConnDenseSeries")
        path = tmp_path / f"sub-0{i}" / "func" / f"sub-0{i}_task-rest_space-fsLR_bold.dtseries.nii"
        path.parent.mkdir(parents=True)
        nib.save(img, str(path))
    study = load_study(tmp_path)
    out = ica_stage(study.runs, tmp_path / "ica", ICASettings(dimension=k), tr=study.tr)
    maps = np.asarray(nib.load(out / "melodic_IC.dscalar.nii").dataobj)
    corr = np.abs(np.corrcoef(np.vstack([sources, maps]))[:k, k:])
    assert maps.shape == (k, n_vertices) and corr.max(axis=1).min() > 0.9


def test_small_cohort_with_misregistration_and_spikes_keeps_every_node(tiny_study, tiny_run):
    """The tiny study has per-session misregistration, motion spikes and a rim artifact with spikes:
    every true node is recovered by its own kept component, none is rejected, so every planted
    edge is an edge between two distinct nodes that the analyses can test."""
    from icanets.simulate._evaluate import match_maps

    truth = json.loads((tiny_study.truth / "truth.json").read_text())["realism"]
    assert truth["misregistration"] == "realistic" and truth["spikes"] == "realistic"
    out = tiny_run.out / "ica"
    mask = np.asarray(nib.load(tiny_study.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(tiny_study.truth / "node_maps.nii.gz").dataobj)[mask].T
    ic = np.asarray(nib.load(out / "melodic_IC.nii.gz").dataobj)[mask].T
    table = pd.read_csv(out / "components.tsv", sep="\t")
    kept = match_maps(true, ic, candidates=table["keep"].to_numpy())
    print(f"{len(ic)} components, node r {np.round(kept.assigned_r, 2)}")
    assert kept.recovered().all()
    nodes = pd.read_csv(tiny_run.out / "netmats" / "nodes.tsv", sep="\t")
    planted = pd.read_csv(tiny_study.truth / "planted_edges.tsv", sep="\t")
    for row in planted.itertuples():
        a, b = (f"IC{kept.assigned[n] + 1}" for n in (row.node_i, row.node_j))
        assert a != b and {a, b} <= set(nodes["name"]), row.effect


@pytest.mark.slow
def test_independent_cohort_loses_no_node_to_the_classifier(tmp_path):
    """A small cohort from ``tests/_independent_cohort.py`` (written apart from the simulator:
    smooth noise, a voxel of misregistration per session, a rim artifact with 4 spikes per run):
    the model order stays near the sources (spatially smooth noise inflated it to the cap before)
    and no component that is a true node is labelled noise."""
    import warnings

    from icanets.config import load_config
    from icanets.pipeline import ICASettings, ica_stage
    from icanets.simulate._evaluate import match_maps
    from icanets.study import load_study
    from tests._independent_cohort import make_independent_cohort

    cohort = make_independent_cohort(tmp_path / "cohort", seed=0, n_controls=10, n_patients=12, n_tp2=6, n_tp3=10,
                                     n_volumes=150, shape=(15, 18, 14), n_nodes=8, n_bilateral=2)
    config = load_config(cohort.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(config=config)
        out = ica_stage(study.runs, tmp_path / "ica", ICASettings(), tr=study.tr, mask=config.mask)
    mask = np.asarray(nib.load(cohort.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(cohort.truth / "node_maps.nii.gz").dataobj)[mask].T
    ic = np.asarray(nib.load(out / "melodic_IC.nii.gz").dataobj)[mask].T
    table = pd.read_csv(out / "components.tsv", sep="\t")
    order = json.loads((out / "model_order.json").read_text())
    anything = match_maps(true, ic)
    kept = match_maps(true, ic, candidates=table["keep"].to_numpy())
    print(f"{len(ic)} components ({order['estimates']}); node r {np.round(kept.assigned_r, 2)}")
    assert order["method"] == "reproducibility" and len(ic) <= 3 * (8 + 4)
    labels = table["label"].to_numpy()
    assert not any(labels[anything.best[n]] == "noise" for n in range(len(true)) if anything.best_r[n] >= 0.8)
    assert kept.recovered().sum() >= 6


def test_model_order_subset_is_capped_in_memory(tiny_study, tmp_path, monkeypatch):
    """The subset held for the Laplace/BIC spectrum stays under SUBSET_BYTES (float32); the
    decomposition itself does not depend on it."""
    import icanets.pipeline._ica as stage
    from icanets.config import load_config
    from icanets.pipeline import ICASettings, ica_stage
    from icanets.study import load_study

    config = load_config(tiny_study.config)
    study = load_study(config=config)
    settings = ICASettings(dimension=8, n_repeats=1)
    ica_stage(study.runs, tmp_path / "full", settings, tr=study.tr, mask=config.mask)
    full = json.loads((tmp_path / "full" / "model_order.json").read_text())
    n_voxels = full["n_voxels"]
    monkeypatch.setattr(stage, "SUBSET_BYTES", 4 * n_voxels * (full["subset_timepoints"] // 3))
    ica_stage(study.runs, tmp_path / "capped", settings, tr=study.tr, mask=config.mask)
    capped = json.loads((tmp_path / "capped" / "model_order.json").read_text())
    assert 1 < capped["subset_runs"] < full["subset_runs"]
    assert capped["subset_timepoints"] * 4 * n_voxels <= stage.SUBSET_BYTES
    eigen = pd.read_csv(tmp_path / "capped" / "eigenvalues.tsv", sep="\t")
    # one temporal mean per run removed
    assert eigen["eigenvalue"].notna().sum() == capped["subset_timepoints"] - capped["subset_runs"]
    a, b = (np.asarray(nib.load(tmp_path / f / "melodic_IC.nii.gz").dataobj) for f in ("full", "capped"))
    np.testing.assert_array_equal(a, b)


def test_a_node_split_over_two_maps_is_the_most_correlated_pair(tiny_study, tmp_path):
    """The true maps with one node cut in two along x: the halves are each other's temporal
    partner, and the most correlated pair of the table (ICA keeps maps apart, not time courses)."""
    from icanets.config import load_config
    from icanets.pipeline import ICASettings, ica_stage
    from icanets.study import load_study

    img = nib.load(tiny_study.truth / "node_maps.nii.gz")
    nodes = np.asarray(img.dataobj)
    artifacts = np.asarray(nib.load(tiny_study.truth / "artifact_maps.nii.gz").dataobj)
    node = nodes[..., 0]
    x = np.nonzero(node > 0.05 * node.max())[0]
    cut = int(np.median(x))
    left, right = node.copy(), node.copy()
    left[cut:], right[:cut] = 0, 0
    maps = np.concatenate([left[..., None], right[..., None], nodes[..., 1:], artifacts], axis=3)
    nib.save(nib.Nifti1Image(maps, img.affine), str(tmp_path / "maps.nii.gz"))
    config = load_config(tiny_study.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = load_study(config=config)
        out = ica_stage(study.runs, tmp_path / "ica", ICASettings(), tr=study.tr, mask=config.mask,
                        maps=tmp_path / "maps.nii.gz")
    table = pd.read_csv(out / "components.tsv", sep="\t")
    assert table.loc[0, "partner"] == 2 and table.loc[1, "partner"] == 1
    r = table["partner_r"].abs()
    print(f"halves r {table.loc[0, 'partner_r']:.2f}; others at most {r[2:].max():.2f}")
    assert table.loc[0, "partner_r"] > 0.5 and r.idxmax() in (0, 1) and r[2:].max() < table.loc[0, "partner_r"]
