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
    assert img.shape[3] == 60 and img.header.get_zooms()[3] == pytest.approx(0.8)
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
