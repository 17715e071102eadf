"""Node anatomy: coordinates, hemispheres and atlas labels of every node, in the report and the
findings; a user's atlas; none at all."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from icanets.config import config_from_dict
from icanets.errors import BIDSError, ConfigError
from icanets.io.atlas import display_name, node_anatomy, read_atlas
from icanets.simulate._evaluate import match_maps


def _truth_atlas(sim, folder):
    """A label image from the simulation's true node maps: each voxel labelled by the node whose
    map is largest there, where that map reaches a third of its peak; labels ``node-<k>``."""
    img = nib.load(sim.truth / "node_maps.nii.gz")
    maps = np.asarray(img.dataobj, dtype=float)
    strongest = maps.argmax(axis=3)
    value = maps.max(axis=3)
    peaks = maps.reshape(-1, maps.shape[3]).max(axis=0)
    labels = np.where(value >= peaks[strongest] / 3, strongest + 1, 0)
    atlas = folder / "truth_atlas.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.int16), img.affine), str(atlas))
    table = folder / "truth_atlas.tsv"
    pd.DataFrame({"index": range(1, maps.shape[3] + 1), "name": [f"node-{k}" for k in range(maps.shape[3])]}).to_csv(
        table, sep="\t", index=False)
    return atlas, table


@pytest.mark.slow
def test_a_known_atlas_names_every_demo_node_and_places_it_within_a_voxel(demo_study, demo_run, tmp_path):
    atlas_path, table_path = _truth_atlas(demo_study, tmp_path)
    atlas = read_atlas(atlas_path, table_path, "truth")
    nodes = pd.read_csv(demo_run.out / "netmats" / "nodes.tsv", sep="\t")
    maps = demo_run.out / "ica" / "melodic_IC.nii.gz"
    anatomy = node_anatomy(maps, nodes["component"].tolist(), [atlas])
    truth = node_anatomy(demo_study.truth / "node_maps.nii.gz",
                         list(range(1, nib.load(demo_study.truth / "node_maps.nii.gz").shape[3] + 1)))
    mask = np.asarray(nib.load(demo_study.mask).dataobj).astype(bool)
    true = np.asarray(nib.load(demo_study.truth / "node_maps.nii.gz").dataobj)[mask].T
    ic = np.asarray(nib.load(maps).dataobj)[mask].T[nodes["component"].to_numpy() - 1]
    match = match_maps(true, ic)
    voxel = abs(nib.load(maps).affine[0, 0])
    checked = 0
    for k, row in anatomy.iterrows():
        owner = int(match.owner[k])
        if match.owner_r[k] < 0.8:
            continue
        checked += 1
        assert row["label"] == f"node-{owner}", (row["name"], row["truth"])
        where = row[["com_x", "com_y", "com_z"]].to_numpy(float)
        expected = truth.loc[owner, ["com_x", "com_y", "com_z"]].to_numpy(float)
        assert row["hemisphere"] == truth.loc[owner, "hemisphere"], (row["name"], row["hemisphere"])
        # A bilateral node's centre of mass lies between its lobes, wherever their balance puts it:
        # only its y and z are checked.
        axes = slice(1, 3) if truth.loc[owner, "hemisphere"] == "bilateral" else slice(0, 3)
        assert np.max(np.abs(where - expected)[axes]) <= voxel, (row["name"], where, expected)
    assert checked >= 18  # the demo recovers its 20 nodes (at least 18 at r >= 0.8 after classification)
    assert display_name(anatomy["name"][0], anatomy).startswith(f"{anatomy['name'][0]} - ")


@pytest.mark.slow
def test_the_report_names_nodes_from_the_configured_atlas_and_builds_without_one(tiny_study, tiny_run, tmp_path):
    from icanets.runner import run_study

    html = tiny_run.report.read_text()
    assert "<h2 id='section-" in html and ">Nodes</h2>" in html and "no atlas labels" in html
    assert "centre of mass (x, y, z mm)" in html

    atlas, table = _truth_atlas(tiny_study, tmp_path)
    config = tmp_path / "study_atlas.toml"  # not beside the shared study: its paths made absolute
    text = tiny_study.config.read_text().replace('dataset = "bids"', f'dataset = "{tiny_study.bids}"').replace(
        'mask = "mask.nii.gz"', f'mask = "{tiny_study.mask}"')
    config.write_text(text + f'\n[anatomy]\natlas = "{atlas}"\nlabels = "{table}"\nname = "truth"\n')
    result = run_study(config, tmp_path / "out")
    stats = json.loads((result.out / "analyses" / "stats.json").read_text())
    labelled = [n for n in stats["nodes"] if n["label"].startswith("node-")]
    assert labelled and "truth" in pd.read_csv(result.out / "analyses" / "nodes.tsv", sep="\t").columns
    html = result.report.read_text()
    assert "the labels of truth holding most" in html
    assert any(f"{n['name']} - " in html for n in labelled)
    findings = (result.out / "analyses" / "findings.txt").read_text()
    hits = [h for a in stats["analyses"] for c in a["contrasts"] for h in c["significant"]]
    if hits:
        assert " -- " in findings and "node-" in findings


def test_atlas_inputs_are_checked(tmp_path):
    image = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(np.array([[[0, 1], [2, 3]], [[0, 0], [1, 1]]], dtype=np.int16), np.eye(4)), str(image))
    lut = tmp_path / "a.txt"
    lut.write_text("# FreeSurfer-style\n1 Visual 120 18 134 0\n2 Default 205 62 78 0\n")
    with pytest.raises(BIDSError, match=r"values without a name in .*a.txt: \[3\]"):
        read_atlas(image, lut)
    lut.write_text("1 Visual 120 18 134 0\n2 Default 205 62 78 0\n3 Limbic 0 0 0 0\n")
    assert read_atlas(image, lut).labels == {1: "Visual", 2: "Default", 3: "Limbic"}
    tsv = tmp_path / "a.tsv"
    pd.DataFrame({"index": [1, 2, 3], "name": ["V", "D", "L"]}).to_csv(tsv, sep="\t", index=False)
    assert read_atlas(image, tsv, "mine").labels[3] == "L"
    with pytest.raises(ConfigError, match=r"\[anatomy\] labels.*needs both its image"):
        config_from_dict({"anatomy": {"atlas": str(image)}})
    with pytest.raises(ConfigError, match=r"\[anatomy\] atlas.*file not found"):
        config_from_dict({"anatomy": {"atlas": str(tmp_path / "none.nii.gz"), "labels": str(tsv)}})


def test_nilearn_atlases_are_used_only_when_already_downloaded(tmp_path, monkeypatch):
    from icanets.io.atlas import nilearn_atlases

    monkeypatch.setenv("NILEARN_DATA", str(tmp_path / "nilearn_data"))
    monkeypatch.delenv("NILEARN_SHARED_DATA", raising=False)
    assert nilearn_atlases() == []  # nothing there, nothing fetched
    atlases = tmp_path / "nilearn_data" / "fsl" / "data" / "atlases"
    (atlases / "HarvardOxford").mkdir(parents=True)
    labels = np.zeros((4, 4, 4), dtype=np.int16)
    labels[:2] = 1
    labels[2:] = 2
    nib.save(nib.Nifti1Image(labels, np.eye(4)), str(atlas_file := atlases / "HarvardOxford" /
                                                      "HarvardOxford-cort-maxprob-thr25-2mm.nii.gz"))
    (atlases / "HarvardOxford-Cortical.xml").write_text(
        '<atlas><data><label index="0" x="1" y="2" z="3">Frontal Pole</label>'
        '<label index="1" x="1" y="2" z="3">Insular Cortex</label></data></atlas>')
    found = nilearn_atlases()
    assert [a.name for a in found] == ["Harvard-Oxford cort"] and atlas_file.exists()
    assert found[0].labels == {1: "Frontal Pole", 2: "Insular Cortex"}
