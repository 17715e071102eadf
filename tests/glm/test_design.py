import numpy as np
import pandas as pd
import pytest

from icanets.glm import Design, DesignError, design_from_formula, design_from_fsl, parse_contrast, read_vest, write_vest


def _design(x, c=None, **kw):
    x = np.asarray(x, dtype=float)
    c = np.atleast_2d(c if c is not None else np.eye(x.shape[1])[0])
    return Design(matrix=x, columns=tuple(f"x{j}" for j in range(x.shape[1])), contrasts=c,
                  contrast_names=tuple(f"c{k}" for k in range(c.shape[0])), **kw)


def test_rank_deficient_design_names_the_column(rng):
    a = rng.normal(size=10)
    x = np.column_stack([np.ones(10), a, 2 * a + 1])
    with pytest.raises(DesignError, match=r"rank deficient \(rank 2 < 3 columns\): column\(s\) 'x2'"):
        _design(x)


def test_constant_and_nan_columns(rng):
    with pytest.raises(DesignError, match="'x0', 'x2' are all constant"):
        _design(np.column_stack([np.ones(8), rng.normal(size=8), np.full(8, 2.0)]))
    x = np.column_stack([np.ones(8), rng.normal(size=8)])
    x[3, 1] = np.nan
    with pytest.raises(DesignError, match="design column 'x1' has missing or non-finite values at row 4"):
        _design(x)


def test_contrast_of_the_wrong_length(rng):
    x = np.column_stack([np.ones(8), rng.normal(size=8)])
    with pytest.raises(DesignError, match=r"contrasts must have 2 weights each .* got shape \(1, 3\)"):
        _design(x, [0, 1, 0])
    with pytest.raises(DesignError, match="not all zero"):
        _design(x, [0, 0])


def test_formula_design_and_contrast_parsing():
    data = pd.DataFrame({"group": ["HC", "MDD", "HC", "MDD", "MDD"], "age": [30.0, 41, np.nan, 50, 45],
                         "sex": ["F", "M", "M", "F", "M"]}, index=[f"sub-0{i}" for i in range(1, 6)])
    design = design_from_formula("~ group + age", data, {"hc>mdd": "-group[T.MDD]"})
    assert design.columns == ("Intercept", "group[T.MDD]", "age")
    assert design.n == 4 and design.rows == ("sub-01", "sub-02", "sub-04", "sub-05")
    assert design.dropped == ("sub-03 (age missing)",)
    np.testing.assert_array_equal(design.contrasts, [[0, -1, 0]])
    with pytest.raises(DesignError, match=r"missing values in the variables of '~ group \+ age': sub-03 \(age missing\)"):
        design_from_formula("~ group + age", data, {"x": "age"}, drop_missing=False)
    with pytest.raises(DesignError, match=r"uses variable\(s\) weight that the data lack"):
        design_from_formula("~ group + weight", data, {"x": "group[T.MDD]"})
    with pytest.raises(DesignError, match=r"names 'group\[T.HC\]', which is not a design column"):
        design_from_formula("~ group + age", data, {"x": "group[T.HC]"})
    with pytest.raises(DesignError, match="F-test 'f' names contrast 'nope'"):
        design_from_formula("~ group + age", data, {"x": "age"}, ftests={"f": ["nope"]})
    assert parse_contrast("age - 2*sex + 1e-1*z", ["age", "sex", "z"]).tolist() == [1.0, -2.0, 0.1]


def test_vest_round_trip_and_fsl_design(tmp_path, rng):
    x = np.column_stack([np.repeat([1.0, 0.0], 5), np.repeat([0.0, 1.0], 5), rng.normal(size=10)])
    write_vest(tmp_path / "design.mat", x)
    write_vest(tmp_path / "design.con", np.array([[1, -1, 0], [0, 0, 1.0]]), kind="con", names=["A>B", "age"])
    write_vest(tmp_path / "design.fts", np.array([[1, 1.0]]), kind="fts")
    write_vest(tmp_path / "design.grp", np.repeat([1.0, 2.0], 5)[:, None])
    matrix, header = read_vest(tmp_path / "design.mat")
    np.testing.assert_allclose(matrix, x, rtol=1e-9)
    assert header["NumWaves"] == "3"
    design = design_from_fsl(tmp_path / "design.mat", tmp_path / "design.con", fts=tmp_path / "design.fts",
                             grp=tmp_path / "design.grp")
    assert design.contrast_names == ("A>B", "age") and design.ftests == ((0, 1),)
    assert design.blocks.tolist() == [1] * 5 + [2] * 5
    (tmp_path / "bad.mat").write_text("/NumWaves 2\n/NumPoints 3\n/Matrix\n1 2\n3 4\n")
    with pytest.raises(DesignError, match="NumPoints says 3 rows, the matrix has 2"):
        read_vest(tmp_path / "bad.mat")
    write_vest(tmp_path / "short.con", np.array([[1.0, -1.0]]), kind="con")
    with pytest.raises(DesignError, match="has contrasts of 2 weights, .* has 3 columns"):
        design_from_fsl(tmp_path / "design.mat", tmp_path / "short.con")


def test_nearly_collinear_design_is_warned_about(rng):
    # Issue 12.16: a column collinear to 1e-9 was accepted silently.
    from icanets.glm import CollinearityWarning
    from icanets.glm.design import validate_design

    n = 30
    age = rng.normal(40, 10, n)
    x = np.column_stack([np.ones(n), age, 2 * age + 1e-9 * rng.normal(size=n)])
    with pytest.warns(CollinearityWarning, match=r"condition number .* column 'age2?'"):
        Design(matrix=x, columns=("Intercept", "age", "age2"), contrasts=np.array([[0.0, 1.0, 0.0]]),
               contrast_names=("age",))
    good = Design(matrix=x[:, :2], columns=("Intercept", "age"), contrasts=np.array([[0.0, 1.0]]),
                  contrast_names=("age",))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_design(good)
