import json

import pytest

from icanets.errors import BIDSError
from icanets.io.bids import (
    bold_filename,
    find_bold_files,
    parse_entities,
    read_participants,
    read_tsv,
    sidecar_metadata,
)
from tests._bids_factory import write_bold, write_participants


def test_parse_entities_all_extensions():
    assert parse_entities("sub-01_task-rest_bold.nii") == ({"sub": "01", "task": "rest"}, "bold", ".nii")
    ents, suffix, ext = parse_entities("sub-01_ses-A_task-rest_run-2_space-fsLR_den-91k_bold.dtseries.nii")
    assert ents == {"sub": "01", "ses": "A", "task": "rest", "run": "2", "space": "fsLR", "den": "91k"}
    assert (suffix, ext) == ("bold", ".dtseries.nii")


def test_parse_entities_rejects_malformed_names():
    with pytest.raises(BIDSError, match="not a BIDS entity"):
        parse_entities("sub-01_rest_bold.nii.gz")
    with pytest.raises(BIDSError, match="appears twice"):
        parse_entities("sub-01_run-1_run-2_bold.nii.gz")


def test_filename_round_trip():
    entities = {"sub": "01", "ses": "2", "task": "rest", "run": "1", "space": "MNI", "desc": "preproc"}
    name = bold_filename(entities)
    assert parse_entities(name) == (entities, "bold", ".nii.gz")


def test_discovery_with_and_without_sessions_and_filters(tmp_path):
    write_bold(tmp_path, "sub-01", "ses-1", extra={"space": "MNI", "desc": "preproc"})
    write_bold(tmp_path, "sub-01", "ses-1", extra={"space": "T1w", "desc": "preproc"})
    write_bold(tmp_path, "sub-01", "ses-2", task="motor", extra={"space": "MNI", "desc": "preproc"})
    write_bold(tmp_path, "sub-02", None, extension=".nii")
    found = find_bold_files(tmp_path)
    assert len(found) == 4
    mni_rest = find_bold_files(tmp_path, {"task": "rest", "space": "MNI", "desc": None})
    assert [b.path.name for b in mni_rest] == ["sub-01_ses-1_task-rest_run-1_space-MNI_desc-preproc_bold.nii.gz"]
    assert mni_rest[0].subject == "sub-01" and mni_rest[0].session == "ses-1"
    no_ses = [b for b in found if b.subject == "sub-02"][0]
    assert no_ses.session is None and no_ses.extension == ".nii"


def test_discovery_rejects_file_in_wrong_subject_folder(tmp_path):
    path = write_bold(tmp_path, "sub-01", "ses-1")
    target = tmp_path / "sub-02" / "ses-1" / "func"
    target.mkdir(parents=True)
    path.rename(target / path.name)
    with pytest.raises(BIDSError, match="names subject sub-01 but lies in folder sub-02"):
        find_bold_files(tmp_path)


def test_sidecar_inheritance_deeper_overrides(tmp_path):
    path = write_bold(tmp_path, "sub-01", "ses-1", tr_json=None)
    (tmp_path / "task-rest_bold.json").write_text(json.dumps({"RepetitionTime": 0.8, "TaskName": "rest"}))
    (tmp_path / "task-motor_bold.json").write_text(json.dumps({"RepetitionTime": 9.0}))
    bold = find_bold_files(tmp_path)[0]
    assert sidecar_metadata(tmp_path, bold) == {"RepetitionTime": 0.8, "TaskName": "rest"}
    (path.parent / path.name.replace(".nii.gz", ".json")).write_text(json.dumps({"RepetitionTime": 0.72}))
    assert sidecar_metadata(tmp_path, bold)["RepetitionTime"] == 0.72


def test_read_tsv_missing_values(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tb\n1\tn/a\n\tx\n")
    table = read_tsv(tmp_path / "t.tsv")
    assert list(table["a"]) == ["1", None] and list(table["b"]) == [None, "x"]


@pytest.mark.parametrize(
    "rows, columns, message",
    [
        ([{"id": "sub-01"}], ["id"], "no 'participant_id' column"),
        ([{"participant_id": "01"}], None, r"line 2: participant_id '01' must look like 'sub-"),
        ([{"participant_id": "sub-01"}, {"participant_id": "sub-01"}], None, "duplicate participant_id sub-01"),
        ([{"participant_id": "sub-0_1"}], None, "must look like"),
    ],
)
def test_participants_validation(tmp_path, rows, columns, message):
    write_participants(tmp_path, rows, columns)
    with pytest.raises(BIDSError, match=message):
        read_participants(tmp_path)


def test_missing_participants_file(tmp_path):
    with pytest.raises(BIDSError, match="table not found: .*participants.tsv"):
        read_participants(tmp_path)
