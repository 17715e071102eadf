import hashlib
import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from icanets.errors import ConfigError, IcanetsError
from icanets.simulate import PRESETS, condition_partial, get_preset, node_timecourses, simulate_study
from icanets.simulate._cohort import make_cohort


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_bit_identical_output(tmp_path, tiny_study):
    again = simulate_study(tmp_path / "again", "tiny", seed=3)
    first, second = _digest(tiny_study.root), _digest(again.root)
    assert first.keys() == second.keys()
    assert first == second
    other = simulate_study(tmp_path / "other", "tiny", seed=4)
    assert _digest(other.root) != first


def test_layout_and_ground_truth_files(tiny_study):
    root = tiny_study.root
    assert sorted(p.name for p in root.iterdir()) == ["bids", "mask.nii.gz", "study.toml", "truth"]
    truth = json.loads((root / "truth" / "truth.json").read_text())
    assert truth["seed"] == 3 and truth["preset"]["name"] == "tiny"
    for name in truth["files"].values():
        assert (root / "truth" / name).exists(), name
    assert not any(p.name.startswith("truth") for p in (root / "bids").iterdir())
    nodes = pd.read_csv(root / "truth" / "nodes.tsv", sep="\t")
    assert (nodes["kind"] == "signal").sum() == 6 and (nodes["kind"] == "artifact").sum() == 4
    maps = nib.load(root / "truth" / "node_maps.nii.gz")
    assert maps.shape[3] == 6
    runs = sorted((root / "bids").rglob("*_bold.nii.gz"))
    assert len(runs) == truth["n_runs"] == len(list((root / "truth" / "timeseries").glob("*_nodes.npy")))
    img = nib.load(runs[0])
    assert 60 * (1 - PRESETS["tiny"].volumes_spread) <= img.shape[3] <= 60
    assert img.header.get_zooms()[3] == pytest.approx(0.8)
    mask = np.asarray(nib.load(root / "mask.nii.gz").dataobj).astype(bool)
    data = np.asarray(img.dataobj)
    assert np.all(data[~mask] == 0) and np.all(data[mask].std(axis=1) > 0)


@pytest.mark.parametrize("name", ["tiny", "demo", "paper"])
def test_cohort_shaped_like_reference(name):
    preset = PRESETS[name]
    cohort = make_cohort(preset, np.random.default_rng(0))
    p, s = cohort.participants, cohort.sessions
    assert (p["group"] == "HC").sum() == preset.n_controls and (p["group"] == "MDD").sum() == preset.n_patients
    patients = set(p.loc[p["group"] == "MDD", "participant_id"])
    per_session = s[s["participant_id"].isin(patients)].groupby("session_id").size()
    assert per_session.to_dict() == {"ses-1": preset.n_patients, "ses-2": preset.n_tp2, "ses-3": preset.n_tp3}
    controls = s[~s["participant_id"].isin(patients)]
    assert (controls["session_id"] == "ses-2").sum() == preset.n_retest
    assert set(s["n_runs"]) <= {1, 2}
    assert p["age"].between(20, 64).all()
    hdrs = s[s["participant_id"].isin(patients)].pivot(index="participant_id", columns="session_id", values="hdrs")
    assert (hdrs["ses-1"] >= 17).all()
    assert hdrs["ses-1"].mean() > hdrs["ses-2"].mean() > hdrs["ses-3"].mean()
    if name == "paper":
        assert p.loc[p["group"] == "MDD", "age"].mean() > p.loc[p["group"] == "HC", "age"].mean()
        remitting = (hdrs["ses-3"].dropna() <= 7).mean()
        assert 0.3 < remitting < 0.65
        assert s["n_runs"].eq(2).all()


def test_node_timecourses_have_the_planted_partial_correlations():
    preset = get_preset("demo")
    from icanets.simulate._network import make_network

    network = make_network(preset, np.random.default_rng(11))
    partial = condition_partial(network, preset, "MDD", "ses-1", z=1.0)
    series = node_timecourses(partial, 40_000, preset.tr, preset.band, np.random.default_rng(12))
    precision = np.linalg.inv(np.cov(series, rowvar=False))
    d = np.sqrt(np.diag(precision))
    estimate = -precision / np.outer(d, d)
    np.fill_diagonal(estimate, 0.0)
    # ~40 % of the band passes: about 16,000 effective samples, SD of an estimate about 0.008.
    assert np.abs(estimate - partial).max() < 0.05
    assert np.abs(series.std(axis=0) - np.sqrt(np.diag(np.linalg.inv(np.eye(len(partial)) - partial)))).max() < 0.1


@pytest.mark.slow
def test_written_time_courses_match_the_precision_matrices_used(tmp_path):
    preset = get_preset("tiny").with_changes(
        name="long", n_controls=2, n_patients=4, n_tp2=0, n_tp3=4, n_retest=0, p_two_runs=1.0,
        n_volumes=3000, resolution=16.0, n_bilateral=1)
    sim = simulate_study(tmp_path / "long", preset, seed=5)
    partials = np.load(sim.truth / "partial.npy")
    index = pd.read_csv(sim.truth / "partial_index.tsv", sep="\t")
    assert len(index) == len(partials) == 10
    errors = []
    for (subject, session), partial in zip(index.itertuples(index=False), partials):
        runs = sorted((sim.truth / "timeseries").glob(f"{subject}_{session}_*_nodes.npy"))
        assert len(runs) == 2
        series = np.vstack([np.load(r) for r in runs])
        precision = np.linalg.inv(np.cov(series, rowvar=False))
        d = np.sqrt(np.diag(precision))
        estimate = -precision / np.outer(d, d)
        np.fill_diagonal(estimate, 0.0)
        errors.append(estimate - partial)
    errors = np.array(errors)
    iu = np.triu_indices(preset.n_nodes, 1)
    # 6,000 samples, ~2,400 effective: SD about 0.02 per edge.
    assert np.abs(errors[:, iu[0], iu[1]]).max() < 0.12
    assert abs(errors[:, iu[0], iu[1]].mean()) < 0.01

    # Planted edges carry their condition's value in every subject-session.
    planted = pd.read_csv(sim.truth / "planted_edges.tsv", sep="\t").set_index("effect")
    groups = pd.read_csv(sim.bids / "participants.tsv", sep="\t").set_index("participant_id")["group"]
    g = planted.loc["group"]
    for (subject, session), partial in zip(index.itertuples(index=False), partials):
        assert partial[g.node_i, g.node_j] == pytest.approx(g[f"{groups[subject]}_{session}"])

    # The images carry the node signals: a voxel at a node's centre follows its time course.
    nodes = pd.read_csv(sim.truth / "nodes.tsv", sep="\t")
    bold = sorted(sim.bids.rglob("*_bold.nii.gz"))[0]
    img = nib.load(bold)
    tcs = np.load(sim.truth / "timeseries" / bold.name.replace("_bold.nii.gz", "_nodes.npy"))
    inverse = np.linalg.inv(img.affine)
    for k, row in nodes[nodes["kind"] == "signal"].iterrows():
        ijk = np.round(inverse @ [float(row.x), float(row.y), float(row.z), 1.0])[:3].astype(int)
        voxel = np.asarray(img.dataobj[ijk[0], ijk[1], ijk[2], :], dtype=float)
        assert np.corrcoef(voxel, tcs[:, k])[0, 1] > 0.4


def test_planted_effects_per_condition():
    preset = get_preset("demo")
    from icanets.simulate._network import make_network

    network = make_network(preset, np.random.default_rng(1))
    by = {e.effect: (e.node_i, e.node_j) for e in network.planted}
    nodes = [n for pair in by.values() for n in pair]
    assert len(set(nodes)) == 6
    value = lambda effect, *cond: condition_partial(network, preset, *cond)[by[effect]]  # noqa: E731
    base = preset.planted_base
    assert value("group", "HC", "ses-1") - value("group", "MDD", "ses-1") == pytest.approx(preset.effect_group)
    assert value("treatment", "MDD", "ses-1") - value("treatment", "MDD", "ses-3") == pytest.approx(preset.effect_treatment)
    assert value("treatment", "HC", "ses-1") == pytest.approx(value("treatment", "MDD", "ses-1"))
    assert value("interaction", "MDD", "ses-1", 1.0) > base > value("interaction", "MDD", "ses-3", 1.0)
    assert value("interaction", "MDD", "ses-1", -1.0) < base < value("interaction", "MDD", "ses-3", -1.0)
    for group, session, z in [("HC", "ses-1", 0), ("MDD", "ses-1", 1), ("MDD", "ses-3", -1)]:
        partial = condition_partial(network, preset, group, session, z)
        assert np.allclose(partial, partial.T) and np.linalg.eigvalsh(np.eye(len(partial)) - partial).min() > 0


def test_existing_output_is_refused_and_failures_leave_nothing(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    with pytest.raises(IcanetsError, match="already exists"):
        simulate_study(out, "tiny")
    out.rmdir()

    def stop(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate_study(out, "tiny", progress=stop)
    assert list(tmp_path.iterdir()) == []


def test_bad_preset_arguments():
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ConfigError, match="unknown preset parameter"):
        get_preset("tiny").with_changes(n_subjects=3)
    with pytest.raises(ConfigError, match="n_tp2"):
        get_preset("tiny").with_changes(n_tp2=99)


def test_realism_levels_and_knobs():
    from icanets.simulate import REALISM_FACTORS

    demo = get_preset("demo")
    assert set(demo.realism().values()) == {"realistic"}
    off = demo.with_realism("off")
    assert set(off.realism().values()) == {"off"}
    assert off.session_shift == off.misalign == off.motion_spikes == off.noise_fwhm == off.volumes_spread == 0
    harsh = demo.with_realism("realistic", spikes="harsh", misregistration="harsh")
    assert harsh.realism()["spikes"] == "harsh" and harsh.realism()["noise"] == "realistic"
    assert harsh.session_shift == demo.resolution and harsh.motion_spikes > demo.motion_spikes
    for factor in REALISM_FACTORS:  # every factor is stronger at each level
        levels = REALISM_FACTORS[factor](demo)
        for knob in levels["off"]:
            assert levels["off"][knob] <= levels["realistic"][knob] <= levels["harsh"][knob], (factor, knob)
    assert demo.with_changes(noise_ar=0.11).realism()["noise"] == "custom"
    with pytest.raises(ConfigError, match="unknown realism factor"):
        demo.with_realism("realistic", wobble="harsh")
    with pytest.raises(ConfigError, match="must be one of off, realistic, harsh"):
        demo.with_realism("extreme")


def test_misregistration_moves_every_map_of_a_session():
    from icanets.simulate._images import (NodeLayout, brain_mask, make_grid, node_shapes, render_nodes,
                                          shift_maps)

    grid = make_grid(6.0)
    mask = brain_mask(grid)
    xyz = grid.world()[mask]
    layout = NodeLayout(centres=[np.array([[20.0, -10.0, 10.0], [-20.0, -10.0, 10.0]])], bilateral=np.array([True]))
    shapes = node_shapes(layout, 14.0, size_spread=0.3, max_extra_lobes=2, rng=np.random.default_rng(0))
    shift = np.array([4.0, -3.0, 2.0])
    moved = render_nodes(xyz, shapes, shift=shift)[0]
    still = render_nodes(xyz, shapes)[0]
    centre = lambda m: (m[:, None] * xyz).sum(axis=0) / m.sum()  # noqa: E731
    np.testing.assert_allclose(centre(moved) - centre(still), shift, atol=0.6)
    assert (moved > 0).sum() > 0 and np.corrcoef(moved, still)[0, 1] < 0.95
    # Interpolated maps (artifacts, baseline) move the same way.
    again = shift_maps(still[None], mask, grid, shift)[0]
    np.testing.assert_allclose(centre(again) - centre(still), shift, atol=0.8)
    assert np.corrcoef(again, moved)[0, 1] > 0.95


def test_nuisance_sources(rng):
    from icanets.simulate._images import brain_mask, make_grid
    from icanets.simulate._nuisance import edge_profile, motion_spikes, physiological, smooth_noise, vessel_map

    grid = make_grid(8.0)
    mask = brain_mask(grid)
    xyz = grid.world()[mask]
    noise = smooth_noise(mask, 400, 1.5, 0.4, rng)
    assert noise.shape == (400, mask.sum()) and abs(noise.std() - 1) < 0.05
    lag1 = np.mean([np.corrcoef(noise[:-1, v], noise[1:, v])[0, 1] for v in range(0, mask.sum(), 97)])
    assert abs(lag1 - 0.4) < 0.05
    volume = np.zeros(mask.shape)
    volume[mask] = noise[0]
    neighbour = np.corrcoef(volume[:-1][mask[:-1] & mask[1:]], volume[1:][mask[:-1] & mask[1:]])[0, 1]
    assert 0.3 < neighbour < 0.9  # FWHM 1.5 voxels: sigma 0.64, neighbour correlation exp(-1 / (4 sigma^2)) = 0.55
    edge = edge_profile(mask)
    tcs, patterns = motion_spikes(200, 3.0, 5.0, xyz, edge, np.random.default_rng(1))
    assert tcs.shape[1] == patterns.shape[0] >= 1 and set(np.unique(tcs)) <= {0.0, 0.35, 1.0}
    assert np.abs(patterns[:, edge > 0.9]).mean() > 2 * np.abs(patterns[:, edge < 0.1]).mean()
    tcs, patterns = physiological(500, 0.8, 1.0, 0.5, vessel_map(xyz, edge, np.zeros(len(xyz), bool)), edge, xyz,
                                  np.random.default_rng(2))
    freqs = np.fft.rfftfreq(500, 0.8)
    cardiac, breath = (freqs[np.argmax(np.abs(np.fft.rfft(tcs[:, i])))] for i in (0, 1))
    assert cardiac <= 0.36  # a 0.9-1.3 Hz pulse sampled at 1.25 Hz aliases to |f - 1.25| <= 0.35 Hz
    assert 0.18 <= breath <= 0.38


@pytest.mark.slow
def test_realistic_study_has_unequal_runs_and_visible_nuisance(tmp_path):
    preset = get_preset("tiny").with_changes(n_controls=2, n_patients=4, n_tp2=0, n_tp3=2, n_retest=0,
                                             volumes_spread=0.5, motion_spikes=3.0, spike_amplitude=8.0)
    sim = simulate_study(tmp_path / "s", preset, seed=1)
    runs = pd.read_csv(sim.truth / "runs.tsv", sep="\t")
    assert runs["n_volumes"].nunique() > 1 and runs["n_volumes"].between(30, 60).all()
    per_session = runs.groupby(["participant_id", "session_id"])[["shift_x", "shift_y", "shift_z"]].nunique()
    assert (per_session == 1).all().all()  # one misregistration per session
    assert runs[["shift_x", "shift_y", "shift_z"]].abs().max().max() <= preset.session_shift
    truth = json.loads((sim.truth / "truth.json").read_text())
    assert truth["realism"]["spikes"] == "custom" and truth["realism"]["misregistration"] == "realistic"
    bold = sorted(sim.bids.rglob("*_bold.nii.gz"))
    for path, n in zip(bold, runs.sort_values("run")["n_volumes"]):
        assert nib.load(path).shape[3] == n
    data = np.asarray(nib.load(bold[0]).dataobj, dtype=float)
    mask = np.asarray(nib.load(sim.mask).dataobj).astype(bool)
    jumps = np.abs(np.diff(data[mask], axis=1)).mean(axis=0)
    assert jumps.max() > 3 * np.median(jumps)  # motion spikes stand out frame to frame
