import numpy as np
import pandas as pd
import pytest

from icanets.netmats import EdgeTable, NetmatsError, edge_index, edges_to_matrix, matrix_to_edges, n_nodes_from_edges


def test_upper_triangle_row_major(rng):
    m = rng.normal(size=(5, 5))
    expected = [m[i, j] for i in range(5) for j in range(i + 1, 5)]
    np.testing.assert_array_equal(matrix_to_edges(m), expected)


def test_round_trip_and_stacks(rng):
    a = rng.normal(size=(3, 6, 6))
    a = a + a.transpose(0, 2, 1)
    a[:, np.arange(6), np.arange(6)] = 0
    np.testing.assert_array_equal(edges_to_matrix(matrix_to_edges(a)), a)
    e = rng.normal(size=(4, 15))
    np.testing.assert_array_equal(matrix_to_edges(edges_to_matrix(e)), e)


def test_edge_count_validation():
    assert n_nodes_from_edges(14706) == 172
    with pytest.raises(NetmatsError, match="not the number of edges"):
        n_nodes_from_edges(14)


def test_relabelling_nodes_permutes_edges_consistently(rng):
    m = rng.normal(size=(6, 6))
    m = m + m.T
    perm = rng.permutation(6)
    index = edge_index(6)
    permuted = matrix_to_edges(m[np.ix_(perm, perm)])
    for row in index.itertuples():
        assert permuted[row.edge] == m[perm[row.node_i], perm[row.node_j]]


def test_edge_table_save_load(tmp_path, rng):
    rows = pd.DataFrame({"participant_id": ["sub-01", "sub-02"], "session_id": ["ses-1", ""], "n_runs": [2, 1]})
    table = EdgeTable(rng.normal(size=(2, 10)), rows, edge_index(5, list("abcde")), {"method": "ridgep"})
    table.save(tmp_path, "edges_x")
    back = EdgeTable.load(tmp_path, "edges_x")
    np.testing.assert_array_equal(back.values, table.values)
    assert back.rows["participant_id"].tolist() == ["sub-01", "sub-02"]
    assert back.edges["name_j"].tolist()[:4] == ["b", "c", "d", "e"]
    assert back.metadata == {"method": "ridgep"}
    with pytest.raises(NetmatsError, match="edge table values have shape"):
        EdgeTable(rng.normal(size=(3, 10)), rows, edge_index(5))
