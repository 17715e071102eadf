import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from icanets.cli import main
from icanets.glm import write_vest
from icanets.netmats import EdgeTable, edge_index


def _table(tmp_path, rng, n=24, nodes=6):
    rows = pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(n)], "session_id": "ses-1", "n_runs": 1})
    group = np.repeat(["HC", "MDD"], n // 2)
    values = rng.normal(size=(n, nodes * (nodes - 1) // 2))
    values[:, 4] += 3.0 * (group == "MDD")
    EdgeTable(values, rows, edge_index(nodes, [f"N{k}" for k in range(nodes)]), {"method": "ridgep"}).save(
        tmp_path, "edges_ridgep")
    participants = pd.DataFrame({"participant_id": rows["participant_id"], "group": group,
                                 "age": rng.normal(40, 10, n).round(1), "sex": rng.choice(["F", "M"], n)})
    participants.loc[3, "age"] = np.nan
    participants.to_csv(tmp_path / "participants.tsv", sep="\t", index=False, na_rep="n/a")
    return values, participants


def test_glm_command_with_a_formula(tmp_path, rng, capsys):
    values, participants = _table(tmp_path, rng)
    out = tmp_path / "glm"
    assert main(["glm", "--edges", str(tmp_path / "edges_ridgep.npy"), "--formula", "~ group + age + sex",
                 "--participants", str(tmp_path / "participants.tsv"), "--contrast", "MDD>HC=group[T.MDD]",
                 "--contrast", "HC>MDD=-group[T.MDD]", "-n", "500", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "GLM on 23 observations" in printed and "left out: sub-03 ses-1 (age missing)" in printed
    assert "N1 - N2" in printed or "N0 - N5" in printed
    results = pd.read_csv(out / "results.tsv", sep="\t")
    mdd = results[results["contrast"] == "MDD>HC"].set_index("edge")
    frame = participants.drop(index=3).assign(y=np.delete(values[:, 4], 3))
    assert mdd.loc[4, "statistic"] == pytest.approx(smf.ols("y ~ group + age + sex", frame).fit().tvalues.iloc[1])
    assert mdd.loc[4, "p_fwe"] < 0.05 and mdd.loc[4, "name_i"] == "N0" and mdd.loc[4, "name_j"] == "N5"
    sidecar = json.loads((out / "glm.json").read_text())
    assert sidecar["settings"]["n_used"] == 23 and sidecar["settings"]["dropped"] == ["sub-03 ses-1 (age missing)"]
    assert np.load(out / "null_max.npy").shape == (2, 500)


def test_glm_command_with_fsl_files_and_errors(tmp_path, rng, capsys):
    values, _ = _table(tmp_path, rng)
    x = np.column_stack([np.repeat([1.0, 0.0], 12), np.repeat([0.0, 1.0], 12)])
    write_vest(tmp_path / "design.mat", x)
    write_vest(tmp_path / "design.con", np.array([[-1.0, 1.0]]), kind="con", names=["MDD>HC"])
    out = tmp_path / "fsl"
    assert main(["glm", "--edges", str(tmp_path / "edges_ridgep.npy"), "--design", str(tmp_path / "design.mat"),
                 "--contrasts", str(tmp_path / "design.con"), "--tails", "1", "-n", "300", "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.tsv", sep="\t")
    assert results.loc[4, "p_fwe"] < 0.05
    write_vest(tmp_path / "short.mat", x[:20])
    assert main(["glm", "--edges", str(tmp_path / "edges_ridgep.npy"), "--design", str(tmp_path / "short.mat"),
                 "--contrasts", str(tmp_path / "design.con"), "--out", str(tmp_path / "x")]) == 2
    assert "short.mat has 20 rows, but the data (edge table) have 24 observations" in capsys.readouterr().err
    assert main(["glm", "--edges", str(tmp_path / "edges_ridgep.npy"), "--formula", "~ group + weight",
                 "--participants", str(tmp_path / "participants.tsv"), "--contrast", "a=group[T.MDD]",
                 "--out", str(tmp_path / "y")]) == 2
    assert "uses variable(s) weight" in capsys.readouterr().err
    assert main(["glm", "--edges", str(tmp_path / "edges_ridgep.npy"), "--session", "ses-9", "--design",
                 str(tmp_path / "design.mat"), "--contrasts", str(tmp_path / "design.con"), "--out", str(tmp_path / "z")]) == 2
    assert "no rows of session 'ses-9'" in capsys.readouterr().err


def test_paired_difference_and_command(tmp_path, rng, capsys):
    from icanets.glm import DesignError, paired_difference

    subjects = [f"sub-{i:02d}" for i in range(10)]
    rows, values = [], []
    for s in subjects:
        for ses in ("ses-1", "ses-3"):
            if s == "sub-04" and ses == "ses-3":
                continue
            rows.append((s, ses, 1))
            values.append(rng.normal(size=10) + (4.0 if ses == "ses-3" else 0.0) * np.eye(10)[7])
    table = EdgeTable(np.array(values), pd.DataFrame(rows, columns=["participant_id", "session_id", "n_runs"]),
                      edge_index(5))
    pairs = paired_difference(table, "ses-1", "ses-3")
    assert pairs.dropped == ("sub-04 (no ses-3)",) and len(pairs.table.rows) == 9
    np.testing.assert_allclose(pairs.table.values[0], values[1] - values[0])
    with pytest.raises(DesignError, match="session 'ses-2' is not in the edge table"):
        paired_difference(table, "ses-1", "ses-2")
    table.save(tmp_path, "edges")
    assert main(["glm", "--edges", str(tmp_path / "edges.npy"), "--paired", "ses-1,ses-3", "-n", "5000",
                 "--out", str(tmp_path / "paired")]) == 0
    printed = capsys.readouterr().out
    assert "GLM on 9 observations" in printed and "512 exhaustive" in printed and "left out: sub-04 (no ses-3)" in printed
    results = pd.read_csv(tmp_path / "paired" / "results.tsv", sep="\t")
    up = results[results["contrast"] == "ses-3>ses-1"].set_index("edge")
    assert up.loc[7, "p_fwe"] < 0.05


def test_glm_refuses_repeated_subjects_without_blocks(tmp_path, rng, capsys):
    # Issue 12.2: without --session, a subject's sessions were pooled as independent rows.
    n = 10
    rows = pd.DataFrame({"participant_id": [f"sub-{i:02d}" for i in range(n)] * 2,
                         "session_id": ["ses-1"] * n + ["ses-2"] * n, "n_runs": 1})
    EdgeTable(rng.normal(size=(2 * n, 6)), rows, edge_index(4, [f"N{k}" for k in range(4)]), {"method": "ridgep"}).save(
        tmp_path, "edges_ridgep")
    pd.DataFrame({"participant_id": rows["participant_id"][:n], "group": np.repeat(["HC", "MDD"], n // 2)}).to_csv(
        tmp_path / "participants.tsv", sep="\t", index=False)
    common = ["glm", "--edges", str(tmp_path / "edges_ridgep.npy"), "--formula", "~ group", "--participants",
              str(tmp_path / "participants.tsv"), "--contrast", "g=group[T.MDD]", "-n", "100"]
    assert main([*common, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "20 rows from 10 subjects" in err and "sub-00: ses-1, ses-2" in err and "--session" in err
    assert not (tmp_path / "a").exists()
    assert main([*common, "--session", "ses-1", "--out", str(tmp_path / "b")]) == 0
    assert main([*common, "--blocks", "participant_id", "--out", str(tmp_path / "c")]) == 0
