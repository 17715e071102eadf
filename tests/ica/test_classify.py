"""The component classifier: its rule, its robustness to spikes, its settings and labels files."""

import numpy as np
import pandas as pd
import pytest
from scipy import signal

from icanets.config import config_from_dict
from icanets.errors import ConfigError
from icanets.ica.classify import ClassifierSettings, _temporal, classify_components, spike_frames
from icanets.ica.data import ICAError
from icanets.io.fsl import read_fix_label_lines, read_fix_labels, write_fix_labels
from icanets.runner import ica_settings_from

CLEAN = dict(edge_fraction=0.3, edge_excess=0.05, csf_fraction=0.0, csf_excess=0.0, cluster_fraction=0.95,
             smoothness=0.9, negative_fraction=0.02, extent=0.01, hf_fraction=0.2, lf_fraction=0.1, kurtosis=0.0,
             spike_frames=0.0)


def _table(*rows):
    return pd.DataFrame([dict(CLEAN, component=i + 1, **row) for i, row in enumerate(rows)])


def test_clean_map_is_never_rejected_on_one_temporal_feature():
    table = classify_components(_table({}, {"hf_fraction": 0.8}, {"lf_fraction": 0.7}, {"kurtosis": 40.0},
                                       {"hf_fraction": 0.8, "lf_fraction": 0.7}))
    assert table["label"].tolist() == ["signal", "uncertain", "uncertain", "signal", "noise"]
    assert table["keep"].tolist() == [True, True, True, True, False]
    assert "clean map, but high-frequency power 0.80 > 0.5" == table["reasons"][1]


def test_spatial_evidence_rejects_and_a_temporal_warning_rejects_a_map_that_is_not_clean():
    table = classify_components(_table({"edge_excess": 0.7}, {"csf_excess": 0.6},
                                       {"cluster_fraction": 0.2, "smoothness": 0.1},
                                       {"edge_excess": 0.4, "hf_fraction": 0.8},
                                       {"negative_fraction": 0.5, "lf_fraction": 0.9},
                                       {"edge_excess": 0.1}))
    assert table["label"].tolist() == ["noise"] * 5 + ["signal"]
    assert table["reasons"][0] == "rim (edge excess 0.70 > 0.5)"
    assert "unstructured map" in table["reasons"][2]
    assert table["reasons"][3] == "high-frequency power 0.80 > 0.5; map not clean"


def test_a_map_that_is_not_clean_but_not_noise_is_uncertain_and_kept():
    """A network beside the ventricles, or a cardiac component whose map spills out of them
    (CSF excess 0.3: neither clean nor over the noise limit), is left for review, not dropped."""
    table = classify_components(_table({"csf_excess": 0.34}, {"edge_excess": 0.3, "negative_fraction": 0.5},
                                       {"csf_excess": 0.34}), stability=np.array([0.9, 0.9, 0.5]))
    assert table["label"].tolist() == ["uncertain"] * 3 and table["keep"].all()
    assert table["reasons"][0] == "map not clean (CSF excess 0.34 > 0.25), no temporal warning"
    assert table["reasons"][1] == ("map not clean (edge excess 0.30 > 0.25, negative fraction 0.50 > 0.35), "
                                   "no temporal warning")
    assert table["reasons"][2].endswith("; unstable (stability 0.50 < 0.7)")
    assert not classify_components(_table({"csf_excess": 0.34}), ClassifierSettings(clean_csf=0.4))["reasons"][0]


def test_unstable_components_are_uncertain_not_noise():
    table = classify_components(_table({}, {}, {"edge_excess": 0.9}), stability=np.array([0.95, 0.4, 0.3]))
    assert table["label"].tolist() == ["signal", "uncertain", "noise"]
    assert table["reasons"][1] == "unstable (stability 0.40 < 0.7)"
    assert "unstable" in table["reasons"][2]


def test_uncertain_is_kept_unless_asked_and_nan_features_fire_no_rule():
    table = _table({"hf_fraction": 0.8}, {"edge_excess": np.nan, "cluster_fraction": np.nan,
                                          "smoothness": np.nan, "csf_excess": np.nan})
    assert classify_components(table)["keep"].tolist() == [True, True]
    strict = classify_components(table, ClassifierSettings(keep_uncertain=False))
    assert strict["label"].tolist() == ["uncertain", "signal"] and strict["keep"].tolist() == [False, True]


def test_spike_frames_and_temporal_features_are_robust_to_leaked_spikes(rng):
    """A spike leaking into every component's time course (as through dual regression) must not
    change the spectral features, which a kurtosis rule would have turned into a rejection."""
    tr, t = 0.8, 300
    sos = signal.butter(2, [0.01, 0.1], btype="bandpass", fs=1 / tr, output="sos")
    clean = signal.sosfiltfilt(sos, rng.normal(size=(t + 200, 10)), axis=0)[100:-100]  # no filter edge effects
    clean /= clean.std(axis=0)
    spiked = clean.copy()
    onsets = [40, 120, 200, 260]
    spiked[onsets] += rng.uniform(8, 12, size=(4, 10)) * rng.choice([-1, 1], size=(4, 10))
    found = np.flatnonzero(spike_frames(spiked))
    assert set(onsets) <= set(found) and len(found) <= 2 * len(onsets)
    settings = ClassifierSettings()
    a, b = _temporal([clean], tr, settings), _temporal([spiked], tr, settings)
    np.testing.assert_allclose(b["hf_fraction"], a["hf_fraction"], atol=0.03)
    np.testing.assert_allclose(b["lf_fraction"], a["lf_fraction"], atol=0.03)
    np.testing.assert_allclose(b["kurtosis"], a["kurtosis"], atol=0.6)
    raw_kurtosis = ((spiked - spiked.mean(0)) ** 4).mean(0) / spiked.var(0) ** 2 - 3
    assert np.all(raw_kurtosis > 3)  # what the old rule (kurtosis > 3 -> noise) saw


def test_thresholds_come_from_the_study_config(tmp_path):
    config = config_from_dict({"ica": {"max_edge": 0.3, "keep_uncertain": False, "dimension": 12,
                                       "run_components": 0.4, "n_repeats": 3, "min_shadow_flips": 0.3}})
    settings, classifier = ica_settings_from(config)
    assert classifier.max_edge == 0.3 and classifier.keep_uncertain is False and classifier.max_csf == 0.5
    assert classifier.min_shadow_flips == 0.3 and classifier.min_shadow_fit == 0.5
    assert settings.dimension == 12 and settings.run_components == 0.4 and settings.n_repeats == 3
    settings, _ = ica_settings_from(config, dimension=20, n_repeats=None)  # flags override, None ignored
    assert settings.dimension == 20 and settings.n_repeats == 3
    path = tmp_path / "study.toml"
    path.write_text("[study]\nname = 'x'\n\n[ica]\nmax_hf = 1.5\n")
    from icanets.config import load_config

    with pytest.raises(ConfigError, match=r"study.toml, line 5: classifier setting max_hf must lie in \[0, 1\]"):
        ica_settings_from(load_config(path))
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"ica": {"max_egde": 0.3}})
    with pytest.raises(ConfigError, match="run_components must be 'auto', a fraction"):
        ica_settings_from(config_from_dict({"ica": {"run_components": 1.5}}))
    with pytest.raises(ConfigError, match="run_components must be 'auto'.*got 'half'"):
        ica_settings_from(config_from_dict({"ica": {"run_components": "half"}}))
    assert ica_settings_from(config_from_dict({"ica": {"run_components": "auto"}}))[0].run_components == "auto"
    assert ica_settings_from(config_from_dict({}))[0].run_components == "auto"
    assert ica_settings_from(config_from_dict({"ica": {"precision": "float64"}}))[0].precision == "float64"
    default = ica_settings_from(config_from_dict({}))[0]
    assert (default.approach, default.nonlinearity) == ("symmetric", "tanh")
    chosen = ica_settings_from(config_from_dict({"ica": {"approach": "deflation", "nonlinearity": "pow3"}}))[0]
    assert (chosen.approach, chosen.nonlinearity) == ("deflation", "pow3")
    with pytest.raises(ConfigError, match="approach must be one of deflation, symmetric, got 'defl'"):
        ica_settings_from(config_from_dict({"ica": {"approach": "defl"}}))
    with pytest.raises(ConfigError, match="nonlinearity must be one of pow3, tanh, gauss, got 'cube'"):
        ica_settings_from(config_from_dict({"ica": {"nonlinearity": "cube"}}))
    with pytest.raises(ConfigError, match="precision must be one of float32, float64, got 'float16'"):
        ica_settings_from(config_from_dict({"ica": {"precision": "float16"}}))
    with pytest.raises(ConfigError, match="must be a number or one of reproducibility, consistency, laplace, bic, mdl, aic"):
        config_from_dict({"ica": {"dimension": "guess"}})


def test_settings_reject_nonsense():
    with pytest.raises(ICAError, match="min_stability must lie in"):
        ClassifierSettings(min_stability=2.0)
    with pytest.raises(ICAError, match="hf_cutoff must be positive"):
        ClassifierSettings(hf_cutoff=0.0)
    with pytest.raises(ICAError, match="keep_uncertain must be true or false"):
        ClassifierSettings(keep_uncertain=1)


def test_labels_file_round_trips_and_reads_fix_files(tmp_path):
    labels = ["signal", "noise", "uncertain", "signal", "noise"]
    path = tmp_path / "labels.txt"
    write_fix_labels(path, labels)
    assert read_fix_label_lines(path) == labels
    assert read_fix_labels(path).tolist() == [1, 4]
    # Uncertain components removed too (keep_uncertain = false): the removal list says so.
    write_fix_labels(path, labels, removed=[False, True, True, False, True])
    assert read_fix_labels(path).tolist() == [1, 2, 4] and read_fix_label_lines(path) == \
        ["signal", "noise", "noise", "signal", "noise"]
    # A FIX output file, and a bare list as hand classification often is.
    (tmp_path / "fix.txt").write_text("filtered_func_data.ica\n1, Signal, False\n2, Unclassified Noise, True\n"
                                      "3, Unknown, False\n4, Movement, True\n[2, 4]\n")
    assert read_fix_label_lines(tmp_path / "fix.txt") == ["signal", "noise", "uncertain", "noise"]
    (tmp_path / "bare.txt").write_text("[2, 4]\n")
    assert read_fix_label_lines(tmp_path / "bare.txt") is None
    (tmp_path / "short.txt").write_text("x\n1, Signal, False\n[2]\n")
    with pytest.raises(Exception, match="no line for component"):
        read_fix_label_lines(tmp_path / "short.txt", 3)


def test_motion_correlation_is_reported_and_used_only_when_asked(rng):
    from icanets.ica.classify import motion_correlation, motion_regressors

    params = np.cumsum(rng.normal(0, 0.05, (150, 6)), axis=0)
    tc = np.column_stack([rng.normal(size=150), np.diff(params[:, 2], prepend=params[0, 2]) * 20
                          + 0.2 * rng.normal(size=150)])
    r = motion_correlation([tc, tc], [params, None])
    expanded = motion_regressors(params)
    assert expanded.shape == (150, 24) and np.allclose(expanded.mean(axis=0), 0)
    direct = max(abs(np.corrcoef(tc[:, 1], expanded[:, j])[0, 1]) for j in range(24))
    assert r[1] == pytest.approx(direct, abs=1e-12) and r[1] > 0.9 > 0.4 > r[0]
    assert np.isnan(motion_correlation([tc], [None])).all()
    table = _table({"motion_correlation": 0.95}, {"motion_correlation": np.nan})
    assert classify_components(table)["label"].tolist() == ["signal", "signal"]
    asked = classify_components(table, ClassifierSettings(max_motion=0.6))
    assert asked["label"].tolist() == ["uncertain", "signal"]
    assert asked["reasons"][0] == "clean map, but motion correlation 0.95 > 0.6"
    with pytest.raises(ConfigError, match="max_motion"):
        ica_settings_from(config_from_dict({"ica": {"max_motion": 2.0}}))


def _grid_space(shape=(22, 18, 16)):
    from icanets.ica.data import MaskedSpace

    g = np.indices(shape).reshape(3, -1).T.astype(float)
    centre = (np.array(shape) - 1) / 2
    mask = (np.sum(((g - centre) / (np.array(shape) / 2)) ** 2, axis=1) < 1).reshape(shape)
    return MaskedSpace(mask, "nifti", "template", affine=np.diag([3.0, 3.0, 3.0, 1.0])), g[mask.ravel()]


def test_gradient_fit_is_the_least_squares_fit_on_the_three_derivatives(rng):
    from scipy import ndimage

    from icanets.ica.classify import gradient_fits

    space, _ = _grid_space()
    maps = np.array([ndimage.gaussian_filter(rng.normal(size=space.mask.shape), 2.0)[space.mask] for _ in range(7)])
    of, fit = gradient_fits(maps, space, block=3)  # blocks smaller than the number of maps
    for c in range(len(maps)):
        r2 = []
        for p in range(len(maps)):
            volume = np.zeros(space.mask.shape)
            volume[space.mask] = maps[p]
            design = np.column_stack([np.ones(space.n_voxels)] + [d[space.mask] for d in np.gradient(volume)])
            beta, *_ = np.linalg.lstsq(design, maps[c], rcond=None)
            residual = maps[c] - design @ beta
            r2.append(-np.inf if p == c else 1 - residual @ residual / np.sum((maps[c] - maps[c].mean()) ** 2))
        assert of[c] == int(np.argmax(r2)) and fit[c] == pytest.approx(max(r2), abs=1e-10)


def _shadow_study(rng, n_runs=16, flip=True):
    """Four components: a node (0), a neighbouring node coupled to it (1), the node's
    misregistration shadow (2: its x derivative, time course the node's times the run's shift),
    and a bipolar map of the same shape whose coupling keeps its sign (3)."""
    from icanets.ica.classify import component_features

    space, xyz = _grid_space()
    blob = lambda c, w=2.0: np.exp(-np.sum((xyz - c) ** 2, axis=1) / (2 * w**2))  # noqa: E731
    node, neighbour = blob([7, 9, 8]), blob([15, 9, 8])
    shadow = blob([7.5, 9, 8]) - blob([6.5, 9, 8])
    maps = np.vstack([node, neighbour, shadow, shadow])
    maps = 8 * maps / np.abs(maps).max(axis=1, keepdims=True) + 0.1 * rng.normal(size=maps.shape)
    sos = signal.butter(2, [0.01, 0.1], btype="bandpass", fs=1 / 2.0, output="sos")
    runs = []
    for r in range(n_runs):
        x = signal.sosfiltfilt(sos, rng.normal(size=(300, 4)), axis=0)[50:-50]
        shift = (1 if (r % 2 or not flip) else -1) * rng.uniform(0.3, 1.0)
        x[:, 1] += 0.5 * x[:, 0]
        x[:, 2] = shift * x[:, 0] + 0.5 * x[:, 2]
        x[:, 3] = 0.6 * x[:, 0] + 0.5 * x[:, 3]
        runs.append(x)
    return component_features(maps, runs, 2.0, space, mean_image=np.ones(space.n_voxels))


def test_a_misregistration_shadow_is_noise_and_its_node_and_neighbours_are_kept(rng):
    features = _shadow_study(rng)
    assert features["shadow_of"].tolist()[2:] == [1, 1] and (features["shadow_fit"][2:] > 0.8).all()
    assert features["shadow_fit"][0] < 0.5 and features["shadow_flips"][2] >= 0.4
    assert features["shadow_flips"][3] == 0 and features["shadow_coupling"][3] > 0.5
    table = classify_components(features)
    assert table["label"].tolist() == ["signal", "signal", "noise", "uncertain"]
    assert table["reasons"][2].startswith("misregistration shadow of IC1 (bipolar map, negative fraction")
    assert table["keep"].tolist() == [True, True, False, True]
    # the thresholds are settings; a shadow of a map that is not clean is not one
    assert classify_components(features, ClassifierSettings(min_shadow_fit=0.99))["label"][2] == "uncertain"
    assert classify_components(features, ClassifierSettings(min_shadow_flips=0.51))["label"][2] == "uncertain"
    unclean = features.copy()
    unclean.loc[0, "negative_fraction"] = 0.5
    assert classify_components(unclean)["label"][2] == "uncertain"


def test_the_shadow_rule_skips_the_gradients_without_time_courses(rng):
    from icanets.ica.classify import component_features

    features = _shadow_study(rng)
    space, _ = _grid_space()
    maps_only = component_features(np.zeros((3, space.n_voxels)) + np.arange(space.n_voxels) % 7, [], 2.0, space,
                                   mean_image=np.ones(space.n_voxels))
    assert maps_only["shadow_fit"].isna().all() and maps_only["shadow_of"].eq(0).all()
    table = features.copy()
    table.loc[2, "shadow_of"] = np.nan  # a table read back with the column empty: no rule, no error
    assert classify_components(table)["label"][2] == "uncertain"


def test_the_shadow_rule_needs_several_runs(rng):
    from icanets.ica.classify import rules_not_applied

    features = _shadow_study(rng, n_runs=4)
    assert features["shadow_coupling"].isna().all() and features["shadow_flips"].isna().all()
    assert features["shadow_fit"].notna().all()  # the maps' part is there
    assert classify_components(features)["label"][2] == "uncertain"
    assert rules_not_applied(features) == ["misregistration shadow (gradient fit and run coupling)"]
