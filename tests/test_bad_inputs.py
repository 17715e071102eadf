"""The catalogue of bad inputs: each is a change to a copy of the tiny study, and the message
``icanets inspect`` (or the command named) must give, before any heavy work.

Cases marked ``warn`` are not errors: the study loads, and the warning is printed."""

from __future__ import annotations

import errno
import gzip
import json
import re
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from icanets.cli import main


def _runs(root: Path) -> list[Path]:
    return sorted((root / "bids").glob("sub-*/ses-*/func/*_bold.nii.gz"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def _rewrite_run(path: Path, change) -> None:
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float32)
    new = nib.Nifti1Image(change(data), img.affine, img.header)
    new.set_data_dtype(np.float32)
    new.header.set_slope_inter(1.0, 0.0)
    nib.save(new, str(path))


def _participants(root: Path, change) -> None:
    path = root / "bids" / "participants.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")


def _config(root: Path, old: str, new: str) -> None:
    _edit(root / "study.toml", old, new)


def _append(root: Path, text: str) -> None:
    path = root / "study.toml"
    path.write_text(path.read_text() + "\n" + text + "\n")


_PREDICT = """[predict.change]
subset = "group == 'MDD'"
session = "TP1"
target = "hdrs_change_pct"
model = "cpm"
confounds = ["age", "sex"]
"""


def _corrupt(root):
    path = _runs(root)[0]
    data = bytearray(path.read_bytes())
    data[400:4000] = bytes(3600)
    path.write_bytes(bytes(data))


def _truncate(root):
    path = _runs(root)[0]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_grid(root):
    path = _runs(root)[1]
    img = nib.load(str(path))
    data = np.asarray(img.dataobj)[:-1]
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(path))


def _tr_conflict(root):
    sidecar = _runs(root)[0].with_name(_runs(root)[0].name.replace(".nii.gz", ".json"))
    meta = json.loads(sidecar.read_text())
    meta["RepetitionTime"] = 2.0
    sidecar.write_text(json.dumps(meta))


def _three_volumes(root):
    _rewrite_run(_runs(root)[2], lambda d: d[..., :3])


def _nan_run(root):
    def change(d):
        d = d.copy()
        d[d.shape[0] // 2, d.shape[1] // 2, d.shape[2] // 2, 5] = np.nan
        return d
    _rewrite_run(_runs(root)[3], change)


def _zero_run(root):
    _rewrite_run(_runs(root)[3], lambda d: np.zeros_like(d))


def _mask_other_grid(root):
    img = nib.load(str(root / "mask.nii.gz"))
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-1], img.affine), str(root / "mask.nii.gz"))


#: name -> (change to the study copy, extra inspect flags, expected exit, message pattern)
def _confounds(root: Path) -> list[Path]:
    return sorted((root / "bids").glob("sub-*/ses-*/func/*_desc-confounds_timeseries.tsv"))


def _drop_confounds_row(root):
    path = _confounds(root)[0]
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")


def _drop_confounds_column(root):
    path = _confounds(root)[0]
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    k = lines[0].index("rot_z")
    path.write_text("\n".join("\t".join(v for i, v in enumerate(line) if i != k) for line in lines) + "\n")


def _nan_in_confounds(root):
    path = _confounds(root)[0]
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    lines[5][lines[0].index("trans_x")] = "n/a"
    path.write_text("\n".join("\t".join(line) for line in lines) + "\n")


def _atlas_without_a_name(root):
    mask = nib.load(str(root / "mask.nii.gz"))
    labels = np.asarray(mask.dataobj).astype(np.int16) * 2  # value 2 inside the brain
    nib.save(nib.Nifti1Image(labels, mask.affine), str(root / "atlas.nii.gz"))
    (root / "atlas.tsv").write_text("index\tname\n1\tVisual\n")
    _append(root, '[anatomy]\natlas = "atlas.nii.gz"\nlabels = "atlas.tsv"')


CASES = {
    # node anatomy
    "atlas value without a name": (_atlas_without_a_name, [], 2,
                                   r"\[anatomy\] labels: .*atlas.nii.gz has values without a name in .*atlas.tsv: \[2\]"),
    # motion files (fMRIPrep confounds beside every run of the simulated study)
    "confounds with a row too few": (_drop_confounds_row, [], 2,
                                     r"motion file .*_desc-confounds_timeseries.tsv has \d+ rows but its run has \d+"),
    "confounds without rot_z": (_drop_confounds_column, [], 2, r"confounds_timeseries.tsv lacks column\(s\) rot_z"),
    "NaN in confounds after the first row": (_nan_in_confounds, [], 2,
                                             r"column 'trans_x' has missing values \(n/a\) at row\(s\) 5"),
    "confounds missing for one run": (lambda r: _confounds(r)[0].unlink(), [], 2,
                                      r"motion files \(auto\) found for \d+ of \d+ runs; none beside: .*_bold.nii.gz"),
    "unknown motion source": (lambda r: _append(r, "[motion]\nsource = \"aroma\""), [], 2,
                              r"\[motion\] source: must be one of auto, fmriprep, hcp, fsl, none"),
    # files and images
    "corrupt image": (_corrupt, ["--check-data"], 2, r"cannot read image .*_bold.nii.gz: .*decompressing|is corrupt"),
    "truncated image": (_truncate, ["--check-data"], 2, r"is corrupt"),
    "grid conflict": (_other_grid, [], 2, r"runs differ in voxel grid"),
    "TR conflict": (_tr_conflict, [], 2, r"TR conflict for .*: JSON sidecar RepetitionTime = 2 s, image header = 0.8 s$"),
    "run of 3 volumes": (_three_volumes, [], 2, r"1 BOLD run\(s\) have fewer than 40 volumes .*sub-\d+_ses-\d.*\(3\)"),
    "NaN in a run": (_nan_run, ["--check-data"], 2, r"has 1 NaN or infinite value"),
    "all-zero run": (_zero_run, ["--check-data"], 2, r"does not vary in time .*all zeros"),
    "mask on another grid": (_mask_other_grid, [], 2, r"\[study\] mask: mask .* is not on the grid of the runs"),
    # participants and sessions
    "empty participants.tsv": (lambda r: (r / "bids" / "participants.tsv").write_text(""), [], 2,
                               r"participants.tsv is empty"),
    "duplicate subject": (lambda r: _participants(r, lambda lines: lines + [lines[1]]), [], 2,
                          r"duplicate participant_id sub-001"),
    "subject not in participants": (lambda r: _participants(r, lambda lines: [lines[0]] + lines[2:]), [], 2,
                                    r"BOLD files of subject\(s\) not in .*participants.tsv: sub-001"),
    "unsafe participant id": (lambda r: _participants(r, lambda lines: [lines[0], lines[1].replace(
        "sub-001", "sub-../../x", 1)] + lines[2:]), [], 2, r"participant_id 'sub-../../x' must look like"),
    "non-numeric age": (lambda r: _participants(r, lambda lines: [lines[0], re.sub(r"\t[\d.]+\t", "\tforty\t",
                                                                                   lines[1], count=1)] + lines[2:]),
                        [], 2, r"column 'age': non-numeric value 'forty'"),
    "group label outside declared levels": (
        lambda r: (_participants(r, lambda lines: [lines[0], lines[1].replace("\tHC\t", "\thc\t")] + lines[2:]),
                   _config(r, 'group = "group"', 'group = "group"\nlevels = { group = ["HC", "MDD"] }')),
        [], 2, r"values outside the declared levels \['HC', 'MDD'\].*sub-001 has 'hc'"),
    "group label typo (warn)": (
        lambda r: _participants(r, lambda lines: [lines[0], lines[1].replace("\tHC\t", "\thc\t")] + lines[2:]),
        [], 0, r"labels 'HC', 'hc' differ only in case"),
    "group of one (warn)": (
        lambda r: _participants(r, lambda lines: [lines[0], lines[1].replace("\tHC\t", "\tXX\t")] + lines[2:]),
        [], 0, r"group\(s\) 'XX' \(1 subject\) have fewer than 3 subjects"),
    # config
    "unknown key": (lambda r: _append(r, "[netmats]\nrhoo = 0.1"), [], 2, r"\[netmats\] rhoo: unknown key"),
    "expression injection": (lambda r: _config(r, 'remitter = "hdrs[TP3] <= 7"',
                                               'remitter = "__import__(\'os\').system(\'true\')"'), [], 2,
                             r"\[derived\] remitter:"),
    "negative rho": (lambda r: _append(r, "[netmats]\nrho = -0.1"), [], 2, r"\[netmats\] rho must be a number >= 0"),
    "ICA dimension too large": (lambda r: _append(r, "[ica]\ndimension = 5000"), [], 2,
                                r"\[ica\] dimension: 5000 components exceed what the data allow"),
    "unknown ICA method": (lambda r: _append(r, "[ica]\ndimension = \"melodic\""), [], 2,
                           r"\[ica\] dimension: must be a number or one of reproducibility"),
    "local:0 scheduler": (lambda r: _append(r, "[run]\nscheduler = \"local:0\""), [], 2,
                          r"\[run\] scheduler: must be tcp://HOST:PORT or local:N with N >= 1"),
    "minimum run length below 2": (lambda r: _config(r, 'desc = "preproc"', 'desc = "preproc"\nmin_volumes = 1'),
                                   [], 2, r"\[bold\] min_volumes: must be at least 2"),
    # analyses, checked on the real subjects and levels before any work
    "contrast typo": (lambda r: _config(r, '"HC>MDD" = "-group[T.MDD]"', '"HC>MDD" = "-group[T.MDDD]"'), [], 2,
                      r"\[analyses.hc_vs_mdd_tp1\] contrasts: .*group\[T.MDDD\]"),
    "unknown formula variable": (lambda r: _config(r, 'formula = "~ group + age + sex"', 'formula = "~ group + weight"'),
                                 [], 2, r"\[analyses.hc_vs_mdd_tp1\] formula: .*unknown variable\(s\) weight"),
    "subset selecting nobody": (lambda r: _config(r, "subset = \"group == 'MDD'\"", "subset = \"group == 'MD'\""),
                                [], 2, r"\[analyses.tp1_vs_tp2\] subset: .*selects no subjects"),
    "unknown session role": (lambda r: _config(r, 'paired = ["TP1", "TP2"]', 'paired = ["TP1", "TP9"]'), [], 2,
                             r"\[analyses.tp1_vs_tp2\] paired: session 'TP9' is neither a label"),
    "session without data": (lambda r: _config(r, 'paired = ["TP1", "TP2"]', 'paired = ["TP1", "ses-7"]'), [], 2,
                             r"\[analyses.tp1_vs_tp2\] paired: .*session 'ses-7' \(ses-7\) is not in the edge table"),
    "posthoc session missing": (lambda r: _config(r, 'followup = "TP3"', 'followup = "ses-7"'), [], 2,
                                r"line \d+: \[posthoc\] session 'ses-7' \(ses-7\) is not in the edge table"),
    # predictions, checked on the real subjects before any work
    "prediction of an unknown target": (lambda r: _append(r, _PREDICT.replace('"hdrs_change_pct"', '"hdrs_pct"')), [],
                                        2, r"line \d+: \[predict.change\] target: .*unknown variable\(s\) hdrs_pct"),
    "prediction of a class too small for the folds": (
        lambda r: _append(r, _PREDICT.replace('"hdrs_change_pct"', '"remitter"')), [], 2,
        r"line \d+: \[predict.change\] target: .*smaller class of 'remitter' has \d subjects, fewer than the 5"),
    "prediction with more folds than subjects": (
        lambda r: _append(r, _PREDICT + "folds = 9"), [], 2,
        r"line \d+: \[predict.change\] folds: .*7 subjects with a target and confounds, fewer than the 9"),
    "prediction confound unknown": (lambda r: _append(r, _PREDICT.replace('["age", "sex"]', '["age", "fd"]')), [], 2,
                                    r"line \d+: \[predict.change\] confounds: .*unknown variable\(s\) fd"),
}


@pytest.fixture(scope="module")
def pristine(tiny_study, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "pristine"
    shutil.copytree(tiny_study.root, root, ignore=shutil.ignore_patterns("truth"))
    return root


@pytest.mark.parametrize("name", list(CASES))
def test_inspect_names_what_is_wrong(name, pristine, tmp_path, capsys):
    change, flags, expected, pattern = CASES[name]
    root = tmp_path / "study"
    shutil.copytree(pristine, root)
    change(root)
    start = time.monotonic()
    status = main(["inspect", str(root / "bids"), "--config", str(root / "study.toml"), *flags])
    seconds = time.monotonic() - start
    captured = capsys.readouterr()
    text = captured.err + captured.out
    print(f"{name}: exit {status} in {seconds:.2f} s")
    assert status == expected, text[-2000:]
    assert re.search(pattern, text, flags=re.S | re.M), text[-2000:]
    assert "Traceback" not in text


def test_pristine_copy_inspects_cleanly(pristine, capsys):
    assert main(["inspect", str(pristine / "bids"), "--config", str(pristine / "study.toml"), "--check-data"]) == 0
    assert "Warnings" not in capsys.readouterr().out


# ---- named errors from other commands


def test_simulate_with_too_few_volumes(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "s"), "--preset", "tiny", "--volumes", "2", "--quiet"]) == 2
    assert "gives runs of 2 volumes; at least 20 are needed" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_unreachable_scheduler_is_named(pristine, tmp_path, capsys, monkeypatch):
    import icanets.parallel

    # Dask retries a refused connection until the timeout (20 s by default): 2 s are enough here.
    monkeypatch.setattr(icanets.parallel, "CONNECT_TIMEOUT", 2.0)
    status = main(["run", str(pristine / "study.toml"), "--out", str(tmp_path / "o"), "--scheduler",
                   "tcp://127.0.0.1:9", "--quiet"])
    err = capsys.readouterr().err
    if "needs dask.distributed" in err:
        pytest.skip("dask.distributed is not installed")
    assert status == 2 and "cannot reach the Dask scheduler tcp://127.0.0.1:9 within 2 s" in err


def test_os_errors_are_named_not_tracebacks(pristine, tmp_path, capsys, monkeypatch):
    # A read-only folder or a full disk: the operating system's error, the file, and what to do.
    import icanets.io.atomic

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "ica"))

    monkeypatch.setattr(icanets.io.atomic.Path, "mkdir", full)
    assert main(["ica", str(pristine / "study.toml"), "--out", str(tmp_path / "o" / "ica"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "the disk is full" in err and "Traceback" not in err
    monkeypatch.undo()
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["netmats", str(tmp_path), "--out", str(blocker / "o"), "--quiet"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_chunk_size_and_n_perm_are_checked(rng):
    from icanets.glm import Design, DesignError, permutation_glm

    d = Design(matrix=np.ones((8, 1)), columns=("mean",), contrasts=np.array([[1.0]]), contrast_names=("m",))
    with pytest.raises(DesignError, match="chunk_size must be a whole number >= 1"):
        permutation_glm(rng.normal(size=(8, 3)), d, chunk_size=0)
    with pytest.raises(DesignError, match="n_perm must be a whole number >= 1"):
        permutation_glm(rng.normal(size=(8, 3)), d, n_perm=0)


def test_ica_command_takes_its_settings_from_the_config(pristine, tmp_path, capsys):
    # Issue 12.15: the --dim default used to win over [ica] dimension.
    from icanets.cli import _parser

    args = _parser().parse_args(["ica", str(pristine / "study.toml"), "--out", str(tmp_path / "o")])
    assert args.dim is None and args.repeats is None and args.run_components is None
    from icanets.config import load_config
    from icanets.runner import ica_settings_from

    config = pristine / "study-ica.toml"
    config.write_text((pristine / "study.toml").read_text() + "\n[ica]\ndimension = 9\nn_repeats = 3\n")
    settings, _ = ica_settings_from(load_config(config), dimension=args.dim, n_repeats=args.repeats)
    assert settings.dimension == 9 and settings.n_repeats == 3
    settings, _ = ica_settings_from(load_config(config), dimension=7)
    assert settings.dimension == 7


def test_gzip_helper_is_still_readable(pristine):
    # Sanity of the fixture copy: the runs are gzip files the cases above can damage.
    with gzip.open(_runs(pristine)[0], "rb") as fh:
        assert len(fh.read(348)) == 348
