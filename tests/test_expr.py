import numpy as np
import pytest

from icanets.errors import ExpressionError
from icanets.expr import DictContext, parse_expression


def ctx(**values):
    mapping = {}
    n = None
    for key, array in values.items():
        name, _, session = key.partition("__")
        mapping[(name, session.replace("_", "-") or None)] = np.asarray(array, dtype=object if isinstance(array[0], str) or array[0] is None else float)
        n = len(array)
    return DictContext(mapping, n=n)


def test_arithmetic_and_precedence():
    c = ctx(a=[1.0, 2.0, 3.0], b=[4.0, 5.0, 6.0])
    np.testing.assert_allclose(parse_expression("a + b * 2 - -a / 2").evaluate(c), [9.5, 13.0, 16.5])
    np.testing.assert_allclose(parse_expression("(a + b) * 2").evaluate(c), [10, 14, 18])


def test_session_references_and_missing_propagate():
    c = ctx(hdrs__ses_1=[20.0, 18.0, 25.0], hdrs__ses_3=[5.0, np.nan, 10.0])
    expr = parse_expression("100 * (hdrs[ses-1] - hdrs[ses-3]) / hdrs[ses-1]")
    np.testing.assert_allclose(expr.evaluate(c), [75.0, np.nan, 60.0])
    remit = parse_expression("hdrs[ses-3] <= 7").evaluate(c)
    np.testing.assert_array_equal(remit, [1.0, np.nan, 0.0])


def test_three_valued_logic():
    c = ctx(x=[1.0, 0.0, np.nan, np.nan, 1.0], y=[np.nan, np.nan, 0.0, 1.0, 1.0])
    np.testing.assert_array_equal(parse_expression("x and y").evaluate(c), [np.nan, 0.0, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(parse_expression("x or y").evaluate(c), [1.0, np.nan, np.nan, 1.0, 1.0])
    np.testing.assert_array_equal(parse_expression("not x").evaluate(c), [0.0, 1.0, np.nan, np.nan, 0.0])


def test_text_comparison_and_where():
    c = ctx(group=["HC", "MDD", None], age=[30.0, 40.0, 50.0])
    np.testing.assert_array_equal(parse_expression("group == 'MDD'").evaluate(c), [0.0, 1.0, np.nan])
    np.testing.assert_array_equal(parse_expression('group != "MDD"').evaluate(c), [1.0, 0.0, np.nan])
    out = parse_expression("where(group == 'HC', age, -age)").evaluate(c)
    np.testing.assert_array_equal(out, [30.0, -40.0, np.nan])


def test_functions_and_undefined_values():
    c = ctx(a=[4.0, 0.0, -1.0], b=[2.0, 0.0, np.nan])
    np.testing.assert_array_equal(parse_expression("a / b").evaluate(c), [2.0, np.nan, np.nan])
    np.testing.assert_array_equal(parse_expression("sqrt(a)").evaluate(c), [2.0, 0.0, np.nan])
    np.testing.assert_array_equal(parse_expression("log(a)").evaluate(c)[1:], [np.nan, np.nan])
    np.testing.assert_array_equal(parse_expression("max(a, b)").evaluate(c), [4.0, 0.0, np.nan])
    np.testing.assert_array_equal(parse_expression("coalesce(b, a)").evaluate(c), [2.0, 0.0, -1.0])
    np.testing.assert_array_equal(parse_expression("isna(b)").evaluate(c), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(parse_expression("mean(a, 2)").evaluate(c), [3.0, 1.0, 0.5])


def test_names_lists_every_reference():
    expr = parse_expression("where(remitter, hdrs[TP1], abs(age - 3))")
    assert expr.names() == {("remitter", None), ("hdrs", "TP1"), ("age", None)}


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty expression"),
        ("a +", "expected a number"),
        ("a $ b", "unexpected character '$'"),
        ("(a + b", "expected ')'"),
        ("a b", "unexpected text"),
        ("foo(a)", "unknown function 'foo'"),
        ("abs(a, b)", "takes 1 arguments, got 2"),
        ("a < b < c", "chained comparisons"),
        ("hdrs[ses 1]", "bad session reference"),
        ("__import__('os')", "unknown function '__import__'"),
    ],
)
def test_syntax_errors_point_at_the_problem(text, message):
    with pytest.raises(ExpressionError, match=message.replace("(", r"\(").replace(")", r"\)").replace("$", r"\$")):
        parse_expression(text)


def test_python_is_never_evaluated():
    # Attribute access and calls of arbitrary names are not part of the language.
    for text in ["a.__class__", "open('x')", "lambda: 1", "[1, 2]"]:
        with pytest.raises(ExpressionError):
            parse_expression(text)


def test_evaluation_errors_name_the_variable():
    c = ctx(group=["HC", "MDD"], age=[1.0, 2.0])
    with pytest.raises(ExpressionError, match="'group' holds text"):
        parse_expression("group + 1").evaluate(c)
    with pytest.raises(ExpressionError, match="unknown variable 'weight'"):
        parse_expression("weight * 2").evaluate(c)
