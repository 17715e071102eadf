"""CIFTI grayordinates and surfaces: the series unit, masks, surface-aware classifier features
(checked against the volumetric features of the same maps), dlabel atlases, the HCP layout."""

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from icanets.errors import BIDSError, StudyError
from icanets.ica.classify import classify_components, component_features, rules_not_applied
from icanets.ica.data import ICAError, load_mask
from icanets.io.cifti import (brain_models, envelope_rim, grayordinate_adjacency, read_surface, surface_values,
                              volume_values, with_surfaces)
from icanets.io.images import read_image_info
from icanets.simulate import simulate_study
from icanets.simulate._images import brain_mask, make_grid
from icanets.simulate._cifti import cifti_layout


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """The tiny study as NIfTI and as CIFTI (same seed: the same data, reordered)."""
    root = tmp_path_factory.mktemp("cifti")
    return (simulate_study(root / "nifti", "tiny", seed=1), simulate_study(root / "cifti", "tiny", seed=1,
                                                                              format="cifti"))


def _first_run(study):
    return sorted(study.bids.rglob("*_bold.dtseries.nii"))[0]


def _order(preset="tiny"):
    from icanets.simulate import get_preset

    grid = make_grid(get_preset(preset).resolution)
    mask = brain_mask(grid)
    return grid, mask, cifti_layout(grid, mask)


def test_series_axis_in_hertz_is_a_rate(tmp_path):
    models = nib.cifti2.BrainModelAxis.from_surface(np.arange(10), 10, "CortexLeft")
    for unit, step, tr in (("HERTZ", 1.25, 0.8), ("SECOND", 0.72, 0.72)):
        series = nib.cifti2.SeriesAxis(0.0, step, 30, unit=unit)
        path = tmp_path / f"{unit}.dtseries.nii"
        nib.save(nib.Cifti2Image(np.ones((30, 10), np.float32), header=nib.cifti2.Cifti2Header.from_axes(
            (series, models))), str(path))
        assert read_image_info(path).tr == pytest.approx(tr)
    series = nib.cifti2.SeriesAxis(0.0, 1.0, 30, unit="METER")
    path = tmp_path / "space.dtseries.nii"
    nib.save(nib.Cifti2Image(np.ones((30, 10), np.float32), header=nib.cifti2.Cifti2Header.from_axes(
        (series, models))), str(path))
    with pytest.raises(StudyError, match="METER, not time"):
        read_image_info(path)


def test_simulated_cifti_holds_the_nifti_data(pair):
    nifti, cifti = pair
    _, mask, layout = _order()
    bold_n = sorted(nifti.bids.rglob("*_bold.nii.gz"))[0]
    bold_c = _first_run(cifti)
    volume = np.asarray(nib.load(bold_n).dataobj, dtype=float)[mask].T
    dense = np.asarray(nib.load(bold_c).dataobj, dtype=float)
    step = float(nib.load(bold_n).dataobj.slope)  # the NIfTI is stored as scaled int16
    assert dense.shape == (volume.shape[0], mask.sum())
    assert np.abs(dense - volume[:, layout.order]).max() <= step
    geometry = with_surfaces(brain_models(bold_c), cifti.surfaces)
    assert geometry.missing_surfaces == [] and geometry.has_volume
    # every mesh vertex is in a triangle, and the medial wall is in the mesh but not a grayordinate
    for surface in geometry.surfaces.values():
        assert np.unique(surface.faces).size == len(surface.coordinates)
        assert geometry.n_vertices[surface.structure] > np.sum(geometry.structures == surface.structure)
    json_truth = json.loads((cifti.truth / "truth.json").read_text())
    assert json_truth["format"] == "cifti"


def test_surface_features_match_the_volumetric_ones_on_the_same_maps(pair):
    """The tiny study's true node and artifact maps, scored once on the NIfTI grid and once as
    CIFTI over the synthetic surfaces: the rim and CSF come out the same, clusters and
    smoothness (mesh against 26-neighbourhood) nearly so, and the labels agree."""
    nifti, cifti = pair
    _, mask, layout = _order()
    maps = np.vstack([np.asarray(nib.load(nifti.truth / f).dataobj, dtype=float)[mask].T
                      for f in ("node_maps.nii.gz", "artifact_maps.nii.gz")])
    maps = 6 * maps / np.abs(maps).max(axis=1, keepdims=True)
    mean = np.asarray(nib.load(sorted(nifti.bids.rglob("*_bold.nii.gz"))[0]).dataobj, dtype=float)[mask].mean(axis=1)
    space_n = load_mask(nifti.mask, sorted(nifti.bids.rglob("*_bold.nii.gz"))[0])
    space_c = load_mask(cifti.mask, _first_run(cifti), cifti.surfaces)
    rng = np.random.default_rng(0)
    tcs = [rng.normal(size=(60, len(maps)))]
    a = component_features(maps, tcs, 0.8, space_n, mean_image=mean)
    b = component_features(maps[:, layout.order], tcs, 0.8, space_c, mean_image=mean[layout.order])
    assert np.allclose(a["edge_fraction"], b["edge_fraction"], atol=1e-12)
    assert np.abs(a["csf_excess"] - b["csf_excess"]).max() < 0.1
    assert np.abs(a["cluster_fraction"] - b["cluster_fraction"]).max() < 0.15
    assert np.abs(a["smoothness"] - b["smoothness"]).max() < 0.2
    assert (classify_components(a)["label"] == classify_components(b)["label"]).mean() >= 0.9
    # the misregistration-shadow rule needs the grid's axes: not on CIFTI data
    assert rules_not_applied(b) == ["misregistration shadow (gradient fit and run coupling)"]
    assert a["shadow_fit"].notna().all() and b["shadow_fit"].isna().all()


def test_without_surfaces_the_mesh_features_are_unavailable_and_named(pair):
    _, cifti = pair
    space = load_mask(cifti.mask, _first_run(cifti))
    assert space.geometry.missing_surfaces == ["CIFTI_STRUCTURE_CORTEX_LEFT", "CIFTI_STRUCTURE_CORTEX_RIGHT"]
    assert envelope_rim(space.geometry) is None and grayordinate_adjacency(space.geometry) is None
    rng = np.random.default_rng(1)
    maps = np.abs(rng.normal(size=(3, space.n_voxels))) * 3
    slow = np.sin(2 * np.pi * 0.05 * 0.8 * np.arange(50)[:, None] + rng.uniform(0, 6, 3))  # in the BOLD band
    table = component_features(maps, [slow], 0.8, space, mean_image=np.ones(space.n_voxels))
    assert table[["edge_fraction", "cluster_fraction", "smoothness"]].isna().all().all()
    assert table["csf_fraction"].notna().all()  # CSF is looked for in the volume part
    assert rules_not_applied(table) == ["rim (edge excess)", "unstructured map (clusters and smoothness)",
                                        "misregistration shadow (gradient fit and run coupling)"]
    assert set(classify_components(table)["label"]) <= {"signal", "uncertain"}


def test_masks_of_cifti_runs(pair, tmp_path):
    nifti, cifti = pair
    with pytest.raises(ICAError, match=r"mask .*mask.nii.gz is a Nifti1Image, but the runs are CIFTI"):
        load_mask(nifti.mask, _first_run(cifti))
    geometry = brain_models(cifti.mask)
    models = nib.cifti2.BrainModelAxis.from_surface(np.arange(50), 60, "CortexLeft")
    other = tmp_path / "other.dscalar.nii"
    nib.save(nib.Cifti2Image(np.ones((1, 50), np.float32), header=nib.cifti2.Cifti2Header.from_axes(
        (nib.cifti2.ScalarAxis(["mask"]), models))), str(other))
    with pytest.raises(ICAError, match=f"does not have the brain models of the runs .*{geometry.n} grayordinates"):
        load_mask(other, _first_run(cifti))


def test_inspect_names_a_nifti_mask_given_for_cifti_runs(pair, tmp_path, capsys):
    from icanets.cli import main

    nifti, cifti = pair
    root = tmp_path / "study"
    shutil.copytree(cifti.root, root)
    shutil.copy(nifti.mask, root / "mask.nii.gz")
    config = root / "study.toml"
    config.write_text(config.read_text().replace('mask = "mask.dscalar.nii"', 'mask = "mask.nii.gz"'))
    assert main(["inspect", str(root / "bids"), "--config", str(config)]) != 0
    err = capsys.readouterr().err
    assert "[study] mask" in err and "mask.nii.gz is a Nifti1Image, but the runs are CIFTI" in err


def test_surfaces_are_checked_against_the_runs(pair, tmp_path):
    _, cifti = pair
    geometry = brain_models(_first_run(cifti))
    left = read_surface(cifti.surfaces[0])
    assert left.structure == "CIFTI_STRUCTURE_CORTEX_LEFT"
    small = tmp_path / "sub.L.midthickness.surf.gii"
    img = nib.gifti.GiftiImage(darrays=[
        nib.gifti.GiftiDataArray(left.coordinates[:10].astype(np.float32), intent="NIFTI_INTENT_POINTSET"),
        nib.gifti.GiftiDataArray(np.array([[0, 1, 2]], np.int32), intent="NIFTI_INTENT_TRIANGLE")])
    nib.save(img, str(small))
    assert read_surface(small).structure == "CIFTI_STRUCTURE_CORTEX_LEFT"  # from the file name
    with pytest.raises(StudyError, match="has 10 vertices; the CIFTI runs' CIFTI_STRUCTURE_CORTEX_LEFT has"):
        with_surfaces(geometry, [small])
    nameless = tmp_path / "mesh.surf.gii"
    shutil.copy(small, nameless)
    with pytest.raises(StudyError, match="cannot tell which hemisphere"):
        read_surface(nameless)


def test_maps_split_into_surfaces_and_volume(pair):
    _, cifti = pair
    geometry = with_surfaces(brain_models(_first_run(cifti)), cifti.surfaces)
    values = np.arange(geometry.n, dtype=float)
    left = surface_values(geometry, values, "CIFTI_STRUCTURE_CORTEX_LEFT")
    rows = geometry.structures == "CIFTI_STRUCTURE_CORTEX_LEFT"
    assert np.array_equal(left[geometry.vertex[rows]], values[rows]) and np.isnan(left).sum() > 0
    volume = volume_values(geometry, values)
    assert np.array_equal(volume[tuple(geometry.voxel[~geometry.is_surface].T)], values[~geometry.is_surface])


def test_dlabel_atlas_names_nodes_as_the_same_labels_in_a_volume_atlas(pair, tmp_path):
    """Three labels (left cortex, right cortex, the rest) as a CIFTI dlabel and as the NIfTI label
    image of the same voxels: the CIFTI maps and the NIfTI maps get the same labels, fractions,
    centres of mass and hemispheres."""
    from icanets.io.atlas import node_anatomy, read_atlas

    nifti, cifti = pair
    grid, mask, layout = _order()
    geometry = with_surfaces(brain_models(_first_run(cifti)), cifti.surfaces)
    label_of = np.where(geometry.structures == "CIFTI_STRUCTURE_CORTEX_LEFT", 1,
                        np.where(geometry.structures == "CIFTI_STRUCTURE_CORTEX_RIGHT", 2, 3))
    names = {0: ("???", (0, 0, 0, 0)), 1: ("L cortex", (1, 0, 0, 1)), 2: ("R cortex", (0, 1, 0, 1)),
             3: ("deep", (0, 0, 1, 1))}
    axis = brain_models(_first_run(cifti))
    models = nib.load(str(_first_run(cifti))).header.get_axis(1)
    dlabel = tmp_path / "parts.dlabel.nii"
    nib.save(nib.Cifti2Image(label_of[None].astype(np.float32), header=nib.cifti2.Cifti2Header.from_axes(
        (nib.cifti2.LabelAxis(["parts"], names), models))), str(dlabel))
    assert axis.n == len(label_of)
    volume = np.zeros(mask.shape, np.int32)
    flat = np.zeros(mask.sum(), np.int32)
    flat[layout.order] = label_of
    volume[mask] = flat
    image = tmp_path / "parts.nii.gz"
    nib.save(nib.Nifti1Image(volume, grid.affine), str(image))
    table = tmp_path / "parts.tsv"
    pd.DataFrame({"index": [1, 2, 3], "name": ["L cortex", "R cortex", "deep"]}).to_csv(table, sep="\t", index=False)
    maps_n = nifti.truth / "node_maps.nii.gz"
    maps_c = cifti.truth / "node_maps.dscalar.nii"
    components = list(range(1, nib.load(maps_n).shape[3] + 1))
    a = node_anatomy(maps_n, components, [read_atlas(image, table, "parts")])
    b = node_anatomy(maps_c, components, [read_atlas(dlabel, None, "parts")], surfaces=cifti.surfaces)
    assert list(a["parts"]) == list(b["parts"]) and list(a["label"]) == list(b["label"])
    assert list(a["hemisphere"]) == list(b["hemisphere"])
    assert np.allclose(a[["com_x", "com_y", "com_z"]], b[["com_x", "com_y", "com_z"]], atol=1e-3)
    with pytest.raises(BIDSError, match="label maps"):
        two = tmp_path / "two.dlabel.nii"
        nib.save(nib.Cifti2Image(np.vstack([label_of, label_of]).astype(np.float32),
                                 header=nib.cifti2.Cifti2Header.from_axes(
                                     (nib.cifti2.LabelAxis(["a", "b"], names), models))), str(two))
        read_atlas(two)


def test_hcp_layout_reads_runs_sessions_and_movement_regressors(pair, tmp_path):
    from icanets.config import load_config
    from icanets.study import load_study

    _, cifti = pair
    hcp = simulate_study(tmp_path / "hcp", "tiny", seed=1, format="cifti", layout="hcp")
    config = load_config(hcp.config)
    assert config.layout == "hcp" and config.surfaces
    study = load_study(config=config)
    bids = load_study(config=load_config(cifti.config))
    assert len(study.runs) == len(bids.runs)
    run = study.runs[0]
    assert run.entities == {"sub": "001", "ses": "1", "task": "REST", "dir": "AP", "run": "1"}
    assert run.name == "sub-001_ses-1_task-REST_dir-AP_run-1_bold" and run.path.name.startswith("rfMRI_REST1_AP")
    assert study.tr == bids.tr and sorted(study.session_labels) == sorted(bids.session_labels)
    assert set(study.motion["source"]) == {"hcp"}
    # the same movement as the fMRIPrep-style confounds of the BIDS version (6-decimal text)
    a = study.motion.set_index(["participant_id", "session_id", "n_volumes"])["mean_fd"].sort_index()
    b = bids.motion.set_index(["participant_id", "session_id", "n_volumes"])["mean_fd"].sort_index()
    assert np.allclose(a.to_numpy(), b.to_numpy(), atol=1e-4)
    pd.testing.assert_series_equal(study.sessions["hdrs"].sort_index(), bids.sessions["hdrs"].sort_index())
    # two images matching [hcp] file in one run folder: named
    folder = run.path.parent
    shutil.copy(run.path, folder / f"{folder.name}_Atlas.dtseries.nii")
    text = hcp.config.read_text().replace('file = "{run}_Atlas_MSMAll_hp2000_clean.dtseries.nii"\n', "")
    hcp.config.write_text(text)
    with pytest.raises(BIDSError, match=r"has 2 images matching \[hcp\] file"):
        load_study(config=load_config(hcp.config))


def test_hcp_settings_are_checked(tmp_path):
    from icanets.config import config_from_dict

    with pytest.raises(Exception, match=r"\[hcp\] settings need \[study\] layout"):
        config_from_dict({"hcp": {"file": "{run}.dtseries.nii"}}, base=tmp_path)
    with pytest.raises(Exception, match="layout.*must be one of bids, hcp"):
        config_from_dict({"study": {"layout": "fmriprep"}}, base=tmp_path)
    from icanets.io.bids import find_hcp_files

    (tmp_path / "100307" / "MNINonLinear" / "Results").mkdir(parents=True)
    with pytest.raises(BIDSError, match="allowed: sub, ses"):
        find_hcp_files(tmp_path, {"run": "rfMRI_(?P<scan>.+)"})


def test_preflight_warns_when_cifti_runs_have_no_surfaces_and_checks_given_ones(pair, tmp_path):
    from icanets.config import load_config
    from icanets.errors import ConfigError, IcanetsWarning
    from icanets.runner import preflight
    from icanets.study import load_study

    nifti, cifti = pair
    config = load_config(cifti.config)
    study = load_study(config=config)
    import dataclasses

    bare = dataclasses.replace(config, surfaces=())
    with pytest.warns(IcanetsWarning, match="no \\[bold\\] surfaces for CIFTI_STRUCTURE_CORTEX_LEFT"):
        preflight(bare, study)
    swapped = dataclasses.replace(config, surfaces=tuple(reversed(config.surfaces))[:1] * 2)
    with pytest.raises(ConfigError, match=r"\[bold\] surfaces.*two surfaces given for CIFTI_STRUCTURE_CORTEX_RIGHT"):
        preflight(swapped, study)
    nifti_study = load_study(config=load_config(nifti.config))
    with pytest.raises(ConfigError, match="surfaces are for CIFTI runs; the runs are nifti"):
        preflight(dataclasses.replace(load_config(nifti.config), surfaces=config.surfaces), nifti_study)


def test_simulate_cli_writes_cifti_and_hcp_and_refuses_hcp_nifti(tmp_path, capsys):
    from icanets.cli import main

    assert main(["simulate", str(tmp_path / "a"), "--preset", "tiny", "--format", "cifti", "--layout", "hcp",
                 "--quiet"]) == 0
    assert (tmp_path / "a" / "hcp" / "sessions.tsv").is_file() and (tmp_path / "a" / "mask.dscalar.nii").is_file()
    assert sorted(p.name for p in (tmp_path / "a" / "surfaces").iterdir()) == [
        "synthetic.L.midthickness.surf.gii", "synthetic.R.midthickness.surf.gii"]
    assert main(["simulate", str(tmp_path / "b"), "--preset", "tiny", "--layout", "hcp", "--quiet"]) != 0
    assert "HCP layout holds CIFTI" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_a_dlabel_atlas_of_another_mesh_is_an_error_before_any_stage(pair, tmp_path):
    from icanets.config import load_config
    from icanets.errors import ConfigError
    from icanets.io.atlas import check_atlas_space, read_atlas
    from icanets.runner import preflight
    from icanets.study import load_study

    nifti, cifti = pair
    models = nib.cifti2.BrainModelAxis.from_surface(np.arange(100), 32492, "CortexLeft")
    names = {0: ("???", (0, 0, 0, 0)), 1: ("A", (1, 0, 0, 1))}
    other = tmp_path / "fsLR32k.dlabel.nii"
    nib.save(nib.Cifti2Image(np.ones((1, 100), np.float32), header=nib.cifti2.Cifti2Header.from_axes(
        (nib.cifti2.LabelAxis(["parts"], names), models))), str(other))
    atlas = read_atlas(other)
    with pytest.raises(BIDSError, match="CIFTI_STRUCTURE_CORTEX_LEFT has 32492 vertices in the atlas and"):
        check_atlas_space(atlas, brain_models(_first_run(cifti)))
    with pytest.raises(BIDSError, match="shares no surface or volume with the NIfTI maps"):
        check_atlas_space(atlas, None)
    root = tmp_path / "study"
    shutil.copytree(cifti.root, root)
    shutil.copy(other, root / "atlas.dlabel.nii")
    (root / "study.toml").write_text((root / "study.toml").read_text() + '\n[anatomy]\natlas = "atlas.dlabel.nii"\n')
    config = load_config(root / "study.toml")
    with pytest.raises(ConfigError, match=r"\[anatomy\] atlas.*another mesh resolution"):
        preflight(config, load_study(config=config))
