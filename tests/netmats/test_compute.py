import json

import numpy as np
import pandas as pd

from icanets.cli import main
from icanets.io.fsl import write_text_matrix
from icanets.io.timeseries import RunTimeSeries, load_timeseries
from icanets.netmats import EdgeTable, average_runs, compute_netmats, matrix_to_edges, one_sample_z, ridgep


def test_average_runs_bookkeeping(rng):
    runs = [RunTimeSeries(rng.normal(size=(60, 4)), s, ses, r, f"{s}{ses}{r}")
            for s, ses, r in [("sub-01", "ses-1", "1"), ("sub-01", "ses-1", "2"), ("sub-02", "ses-1", "1"),
                              ("sub-01", "ses-2", "1")]]
    netmats = compute_netmats(runs, "ridgep", rtoz="none")
    table = average_runs(netmats)
    assert table.rows.values.tolist() == [["sub-01", "ses-1", 2], ["sub-02", "ses-1", 1], ["sub-01", "ses-2", 1]]
    expected = (ridgep(runs[0].data) + ridgep(runs[1].data)) / 2
    np.testing.assert_allclose(table.values[0], matrix_to_edges(expected), atol=1e-13)


def _write_stage1(folder, rng, n_runs=6, t=100, n=7):
    folder.mkdir()
    for k in range(n_runs):
        write_text_matrix(folder / f"dr_stage1_subject{k:05d}.txt", rng.normal(size=(t, n)))
    pd.DataFrame({"participant_id": [f"sub-{k // 2:02d}" for k in range(n_runs)],
                  "session_id": ["ses-1"] * n_runs, "run": [str(k % 2 + 1) for k in range(n_runs)]}).to_csv(
        folder.parent / "subjects.tsv", sep="\t", index=False)


def test_netmats_command_on_dual_regression_outputs(tmp_path, rng, capsys):
    _write_stage1(tmp_path / "dr", rng)
    (tmp_path / "labels.txt").write_text("filtered_func_data.ica\n1, Signal, False\n[2, 5]\n")
    out = tmp_path / "nets"
    assert main(["netmats", str(tmp_path / "dr"), "--out", str(out), "--labels", str(tmp_path / "labels.txt"),
                 "--subjects", str(tmp_path / "subjects.tsv"), "--seed", "7"]) == 0
    table = EdgeTable.load(out, "edges_ridgep")
    assert table.rows["participant_id"].tolist() == ["sub-00", "sub-01", "sub-02"]
    assert table.rows["n_runs"].tolist() == [2, 2, 2]
    assert table.values.shape == (3, 10)  # 5 good nodes
    assert table.edges["name_i"].iloc[0] == "IC1" and table.edges["name_j"].iloc[0] == "IC3"
    # Recompute independently: load, demean, drop bad nodes, ridgep, FSLNets z with the recorded scale.
    sidecar = json.loads((out / "netmats.json").read_text())
    scale = sidecar["settings"]["z_scale"]["ridgep"]
    raw = [r.data - r.data.mean(axis=0) for r in load_timeseries(sorted((tmp_path / "dr").glob("*.txt")))]
    good = [0, 2, 3, 5, 6]
    per_run = [np.arctanh(ridgep(x[:, good])) * scale for x in raw]
    expected = [(per_run[2 * s] + per_run[2 * s + 1]) / 2 for s in range(3)]
    np.testing.assert_allclose(table.values, matrix_to_edges(np.array(expected)), atol=1e-12)
    z = np.load(out / "group_ridgep_z.npy")
    np.testing.assert_allclose(z, one_sample_z(np.array(expected)), atol=1e-12)
    ward = pd.read_csv(out / "ward.tsv", sep="\t")
    assert sorted(ward["position"]) == list(range(5))
    assert len(sidecar["inputs"]) == 8 and sidecar["seed"] == 7
    assert "Netmats of 6 runs" in capsys.readouterr().out


def test_netmats_command_errors(tmp_path, rng, capsys):
    _write_stage1(tmp_path / "dr", rng)
    (tmp_path / "labels.txt").write_text("[3, 9]\n")
    assert main(["netmats", str(tmp_path / "dr"), "--out", str(tmp_path / "o"), "--labels",
                 str(tmp_path / "labels.txt")]) == 2
    assert "names component(s) [9] that do not exist (valid: 1..7)" in capsys.readouterr().err
    assert main(["netmats", str(tmp_path / "dr"), "--out", str(tmp_path / "o"), "--good-nodes", "1-3,8"]) == 2
    assert "good nodes must lie in 1..7" in capsys.readouterr().err
    bad = tmp_path / "dr" / "dr_stage1_subject00003.txt"
    bad.write_text(bad.read_text().replace(bad.read_text().split()[4], "nan", 1))
    assert main(["netmats", str(tmp_path / "dr"), "--out", str(tmp_path / "o")]) == 2
    assert "dr_stage1_subject00003.txt: non-finite value (nan) in node" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    few = tmp_path / "few"
    few.mkdir()
    np.save(few / "sub-01_run-1_timeseries.npy", rng.normal(size=(25, 30)))
    assert main(["netmats", str(few), "--out", str(tmp_path / "o2"), "--method", "partial"]) == 2
    assert "needs more time points than nodes" in capsys.readouterr().err
    np.save(few / "sub-01_run-1_timeseries.npy", rng.normal(size=(3, 7)))  # issue 12.1: 3 volumes
    assert main(["netmats", str(few), "--out", str(tmp_path / "o2")]) == 2
    assert "sub-01_run-1_timeseries.npy has 3 time points; at least 20 are needed" in capsys.readouterr().err
