import gzip
import json
import warnings

import nibabel as nib
import numpy as np
import pytest

from icanets.config import config_from_dict
from icanets.errors import BIDSError, ExpressionError, MissingDataWarning, StudyError
from icanets.study import load_study
from tests._bids_factory import simple_dataset, write_bold, write_participants, write_sessions


def test_simple_dataset_loads(tmp_path):
    root = simple_dataset(tmp_path, n=4, sessions=("ses-1", "ses-2"))
    study = load_study(root)
    assert study.subjects == ["sub-01", "sub-02", "sub-03", "sub-04"]
    assert study.session_labels == ["ses-1", "ses-2"]
    assert len(study.runs) == 8 and study.tr == 2.0
    assert study.participants["age"].dtype == float
    assert study.participants["sex"].tolist() == ["M", "F", "M", "F"]
    assert study.sessions.loc[("sub-02", "ses-2"), "score"] == 11.0
    assert [r.path.name for r in study.runs_of("sub-01", "ses-2")] == ["sub-01_ses-2_task-rest_run-1_bold.nii.gz"]


def test_tiny_simulated_study_loads_with_derived_variables(tiny_study):
    from icanets.config import load_config

    config = load_config(tiny_study.config)
    study = load_study(config=config)
    truth = json.loads((tiny_study.truth / "truth.json").read_text())
    assert len(study.runs) == truth["n_runs"]
    assert (study.groups == "HC").sum() == 6 and (study.groups == "MDD").sum() == 8
    hdrs1 = study.session_measure("hdrs", "TP1")
    hdrs3 = study.session_measure("hdrs", "ses-3")
    expected = 100 * (hdrs1 - hdrs3) / hdrs1
    np.testing.assert_allclose(study.derived["hdrs_change_pct"], expected)
    remit = study.derived["remitter"]
    assert remit[hdrs3.isna()].isna().all()
    np.testing.assert_array_equal(remit[hdrs3.notna()], (hdrs3[hdrs3.notna()] <= 7).astype(float))
    summary = study.summary()
    assert summary.sessions.loc["ses-1 (TP1)", "total"] == 14
    assert summary.derived.set_index("variable").loc["remitter", "n_defined"] == 7
    per_subject = summary.per_subject.set_index("participant_id")
    assert per_subject["runs"].sum() == len(study.runs)
    first = per_subject.iloc[0]
    assert first["sessions:runs"].startswith("ses-1:") and first["group"] == "HC"
    measures = summary.session_measures.set_index(["measure", "session", "group"])
    row = measures.loc[("hdrs", "ses-3 (TP3)", "MDD")]
    assert row["n"] == 7 and row["mean (SD)"] == f"{hdrs3.mean():.2f} ({hdrs3.std(ddof=1):.2f})"


def test_bold_of_subject_not_in_participants(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_bold(root, "sub-09", "ses-1")
    with pytest.raises(StudyError, match=r"BOLD files of subject\(s\) not in .*participants.tsv: sub-09"):
        load_study(root)


def test_participant_without_bold(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_participants(root, [{"participant_id": s, "group": "A"} for s in ("sub-01", "sub-02", "sub-03")])
    with pytest.raises(StudyError, match=r"listed in .*participants.tsv without any BOLD run.*sub-03"):
        load_study(root)


def test_missing_required_column(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    config = config_from_dict({"participants": {"required": ["group", "handedness"]}})
    with pytest.raises(BIDSError, match=r"lacks required column\(s\) handedness"):
        load_study(root, config)


def test_non_numeric_value_named(tmp_path):
    root = simple_dataset(tmp_path, n=3)
    text = (root / "participants.tsv").read_text().replace("\t32\t", "\tthirty-two\t")
    (root / "participants.tsv").write_text(text)
    with pytest.raises(StudyError, match=r"participants.tsv line 3, participant_id sub-02, column 'age': non-numeric value 'thirty-two'"):
        load_study(root)
    # Declared categorical, the same column is accepted as text.
    study = load_study(root, config_from_dict({"participants": {"categorical": ["age"]}}))
    assert study.participants.loc["sub-02", "age"] == "thirty-two"


def test_non_numeric_session_measure(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_sessions(root, "sub-02", [{"session_id": "ses-1", "score": "high"}])
    with pytest.raises(StudyError, match=r"sub-02_sessions.tsv line 2, session_id ses-1, column 'score'"):
        load_study(root, config_from_dict({"sessions": {"numeric": ["score"]}}))


def test_session_listed_without_bold_warns_and_is_kept(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_sessions(root, "sub-01", [{"session_id": "ses-1", "score": 1}, {"session_id": "ses-2", "score": 2}])
    with pytest.warns(MissingDataWarning, match="sub-01 ses-2 is listed in sub-01_sessions.tsv but has no BOLD run"):
        study = load_study(root)
    assert study.sessions.loc[("sub-01", "ses-2"), "n_runs"] == 0
    missing = study.summary().missing
    assert missing.values.tolist() == [["sub-01", "ses-2", "listed in sessions.tsv, no BOLD run"]]


def test_bold_session_not_in_sessions_tsv_warns(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_bold(root, "sub-02", "ses-2")
    with pytest.warns(MissingDataWarning, match="sub-02 has BOLD runs in ses-2 not listed"):
        study = load_study(root)
    assert np.isnan(study.sessions.loc[("sub-02", "ses-2"), "score"])


def test_tr_conflict_between_sidecar_and_header(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_bold(root, "sub-02", "ses-1", tr_header=2.0, tr_json=2.5)
    with pytest.raises(StudyError, match=r"TR conflict for .*sub-02_ses-1_task-rest_run-1_bold.nii.gz: JSON sidecar RepetitionTime = 2.5 s, image header = 2 s"):
        load_study(root)


def test_tr_from_header_when_no_sidecar_and_differing_trs(tmp_path):
    root = simple_dataset(tmp_path, n=3)
    write_bold(root, "sub-03", "ses-1", tr_header=3.0, tr_json=None)
    (root / "sub-03" / "ses-1" / "func" / "sub-03_ses-1_task-rest_run-1_bold.json").unlink()
    with pytest.raises(StudyError, match=r"runs differ in TR: most have 2.0 s, but sub-03_ses-1_task-rest_run-1_bold.nii.gz: 3.0 s"):
        load_study(root)


def test_no_tr_anywhere(tmp_path):
    root = simple_dataset(tmp_path, n=1)
    write_bold(root, "sub-01", "ses-1", tr_header=None, tr_json=None)
    (root / "sub-01" / "ses-1" / "func" / "sub-01_ses-1_task-rest_run-1_bold.json").unlink()
    with pytest.raises(StudyError, match="no TR for"):
        load_study(root)


def test_voxel_grid_differs(tmp_path):
    root = simple_dataset(tmp_path, n=3)
    write_bold(root, "sub-02", "ses-1", shape=(4, 5, 4, 40))
    with pytest.raises(StudyError, match=r"runs differ in voxel grid: .*sub-02_ses-1.*shape=\(4, 5, 4\)"):
        load_study(root)


def test_affine_differs(tmp_path):
    root = simple_dataset(tmp_path, n=3)
    write_bold(root, "sub-03", "ses-1", affine=np.diag([3.0, 3, 3, 1]))
    with pytest.raises(StudyError, match="runs differ in voxel grid: .*sub-03"):
        load_study(root)


def test_3d_image_rejected(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_bold(root, "sub-01", "ses-1", shape=(4, 5, 3))
    with pytest.raises(StudyError, match=r"sub-01_ses-1_task-rest_run-1_bold.nii.gz is 3D .* must be a 4D image"):
        load_study(root)


def test_corrupt_header_rejected(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    path = root / "sub-02" / "ses-1" / "func" / "sub-02_ses-1_task-rest_run-1_bold.nii.gz"
    path.write_bytes(gzip.compress(b"this is not a nifti file" * 20))
    with pytest.raises(StudyError, match=r"cannot read image .*sub-02_ses-1_task-rest_run-1_bold.nii.gz"):
        load_study(root)


def test_truncated_uncompressed_image_rejected(tmp_path):
    root = simple_dataset(tmp_path, n=1)
    (root / "sub-01" / "ses-1" / "func" / "sub-01_ses-1_task-rest_run-1_bold.nii.gz").unlink()
    path = write_bold(root, "sub-01", "ses-1", extension=".nii")
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StudyError, match="is truncated"):
        load_study(root)


def test_truncated_compressed_image_caught_with_check_data(tmp_path):
    root = simple_dataset(tmp_path, n=1)
    path = write_bold(root, "sub-01", "ses-1", shape=(20, 20, 20, 40))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    load_study(root)  # the header alone is intact
    with pytest.raises(StudyError, match=r"image .*sub-01_ses-1_task-rest_run-1_bold.nii.gz is corrupt"):
        load_study(root, check_data=True)


def test_duplicate_runs_with_two_extensions(tmp_path):
    root = simple_dataset(tmp_path, n=1)
    write_bold(root, "sub-01", "ses-1", extension=".nii")
    with pytest.raises(StudyError, match="two BOLD files with the same entities"):
        load_study(root)


def test_filters_select_runs(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_bold(root, "sub-01", "ses-1", task="motor")
    assert len(load_study(root).runs) == 3
    assert len(load_study(root, config_from_dict({"bold": {"task": "rest"}})).runs) == 2


def test_no_bold_files(tmp_path):
    write_participants(tmp_path, [{"participant_id": "sub-01"}])
    with pytest.raises(BIDSError, match=r"no BOLD files .* \(filters: task-rest\)"):
        load_study(tmp_path, config_from_dict({"bold": {"task": "rest"}}))


def test_derived_variables_and_errors(tmp_path):
    root = simple_dataset(tmp_path, n=3, sessions=("ses-1", "ses-2"))
    (root / "sub-03" / "ses-2" / "func" / "sub-03_ses-2_task-rest_run-1_bold.nii.gz").unlink()
    write_sessions(root, "sub-03", [{"session_id": "ses-1", "score": 10}])
    config = config_from_dict({
        "sessions": {"roles": {"pre": "ses-1", "post": "ses-2"}},
        "derived": {"change": "score[post] - score[pre]", "older": "age > 31 and group == 'A'",
                    "double": "change * 2"},
    })
    study = load_study(root, config)
    np.testing.assert_array_equal(study.derived["change"], [1.0, 1.0, np.nan])
    np.testing.assert_array_equal(study.derived["double"], [2.0, 2.0, np.nan])
    np.testing.assert_array_equal(study.derived["older"], [0.0, 1.0, 0.0])
    with pytest.raises(ExpressionError, match=r"session 'ses-7' does not exist .*sessions: ses-1, ses-2"):
        load_study(root, config_from_dict({"derived": {"x": "score[ses-7]"}}))
    with pytest.raises(ExpressionError, match=r"unknown variable 'weight'"):
        load_study(root, config_from_dict({"derived": {"x": "weight / 2"}}))
    with pytest.raises(ExpressionError, match=r"per-session measures need a session, e.g. score\[ses-1\]"):
        load_study(root, config_from_dict({"derived": {"x": "score / 2"}}))


def test_mixed_session_and_sessionless_subjects(tmp_path):
    root = simple_dataset(tmp_path, n=2)
    write_participants(root, [{"participant_id": s} for s in ("sub-01", "sub-02", "sub-03")])
    write_bold(root, "sub-03", None)
    with pytest.raises(StudyError, match=r"sub-03 have BOLD files without a session"):
        load_study(root)


def _write_cifti(path, n_volumes=48, n_vertices=20, tr=0.72):
    models = nib.cifti2.BrainModelAxis.from_surface(np.arange(n_vertices), n_vertices + 5, "CortexLeft")
    series = nib.cifti2.SeriesAxis(start=0.0, step=tr, size=n_volumes, unit="SECOND")
    header = nib.cifti2.Cifti2Header.from_axes((series, models))
    data = np.random.default_rng(0).normal(size=(n_volumes, n_vertices)).astype(np.float32)
    img = nib.Cifti2Image(data, header=header)
    img.nifti_header.set_intent("ConnDenseSeries")
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))


def test_cifti_dataset(tmp_path):
    write_participants(tmp_path, [{"participant_id": "sub-01"}, {"participant_id": "sub-02"}])
    for s in ("sub-01", "sub-02"):
        _write_cifti(tmp_path / s / "func" / f"{s}_task-rest_space-fsLR_den-91k_bold.dtseries.nii")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        study = load_study(tmp_path)
    assert [r.kind for r in study.runs] == ["cifti", "cifti"]
    assert study.tr == pytest.approx(0.72) and study.runs[0].n_volumes == 48 and study.runs[0].shape == (20,)
    _write_cifti(tmp_path / "sub-02" / "func" / "sub-02_task-rest_space-fsLR_den-91k_bold.dtseries.nii", n_vertices=21)
    with pytest.raises(StudyError, match="runs differ in voxel grid"):
        load_study(tmp_path)
