"""A small, safe expression language for derived study variables.

Derived variables are declared in the study configuration as text, for example::

    remitter = "hdrs[TP3] <= 7"
    hdrs_change_pct = "100 * (hdrs[TP1] - hdrs[TP3]) / hdrs[TP1]"

The text is tokenised and parsed here by a recursive-descent parser into a small tree of
nodes; nothing is ever handed to Python's ``eval``. Expressions are evaluated column-wise,
one value per subject, with missing values propagated:

* numbers are float arrays with NaN for missing; text columns are object arrays with
  ``None`` for missing;
* ``name`` is a subject-level variable (a ``participants.tsv`` column or an earlier derived
  variable); ``name[ses-3]`` or ``name[TP3]`` is a per-session measure of that session
  (a session label, or a role declared in the configuration);
* ``+ - * /``, unary ``-``, comparisons ``< <= > >= == !=``, ``and``, ``or``, ``not``,
  parentheses, number and string literals, ``true`` and ``false``;
* functions ``abs``, ``sqrt``, ``log``, ``exp``, ``min``, ``max``, ``mean`` (missing if any
  argument is missing), ``isna(x)``, ``coalesce(a, b, ...)`` (first non-missing) and
  ``where(condition, a, b)``.

Comparisons and logical operators return 1.0 (true), 0.0 (false) or NaN (unknown), with
Kleene's three-valued logic for ``and``/``or``. Division by zero and logarithms of
non-positive numbers give a missing value, never an infinity.

Examples
--------
>>> import numpy as np
>>> expr = parse_expression("100 * (hdrs[ses-1] - hdrs[ses-3]) / hdrs[ses-1]")
>>> sorted(expr.names())
[('hdrs', 'ses-1'), ('hdrs', 'ses-3')]
>>> values = {("hdrs", "ses-1"): np.array([20.0, 18.0]), ("hdrs", "ses-3"): np.array([5.0, np.nan])}
>>> ctx = DictContext(values, n=2)
>>> expr.evaluate(ctx)
array([75., nan])
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Mapping, Protocol

import numpy as np

from icanets.errors import ExpressionError

__all__ = ["Expression", "EvaluationContext", "DictContext", "frame_context", "parse_expression"]


class EvaluationContext(Protocol):
    """What an expression needs to be evaluated: the values of the names it uses."""

    n: int

    def value(self, name: str, session: str | None) -> np.ndarray:
        """Values of ``name`` (``session`` None: subject level), shape ``(n,)``.

        Raises :class:`ExpressionError` for an unknown name or session.
        """


@dataclass(frozen=True)
class DictContext:
    """An :class:`EvaluationContext` over a mapping ``(name, session) -> array``."""

    values: Mapping[tuple[str, str | None], np.ndarray]
    n: int

    def value(self, name: str, session: str | None) -> np.ndarray:
        try:
            return self.values[(name, session)]
        except KeyError:
            known = sorted(f"{k}[{s}]" if s else k for k, s in self.values)
            shown = f"{name}[{session}]" if session else name
            raise ExpressionError(f"unknown variable {shown!r}; known: {', '.join(known)}") from None


def frame_context(frame) -> DictContext:
    """A :class:`DictContext` over the columns of a DataFrame (one row per subject).

    Numeric columns become float arrays (NaN missing); others object arrays (None missing).
    """
    values = {}
    for column in frame.columns:
        series = frame[column]
        if series.dtype.kind in "biuf":
            values[(column, None)] = series.to_numpy(dtype=float)
        else:
            values[(column, None)] = series.astype(object).where(series.notna(), None).to_numpy()
    return DictContext(values, n=len(frame))


# ----------------------------------------------------------------------------- tokens
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>"[^"]*"|'[^']*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<session>\[[^\]]*\])
  | (?P<op><=|>=|==|!=|<|>|\+|-|\*|/|\(|\)|,)
    """,
    re.VERBOSE,
)
_SESSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_KEYWORDS = {"and", "or", "not", "true", "false"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise _error(text, pos, f"unexpected character {text[pos]!r}")
        kind = match.lastgroup
        if kind != "ws":
            word = match.group()
            if kind == "name" and word in _KEYWORDS:
                kind = word
            tokens.append(_Token(kind, word, pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


def _error(text: str, pos: int, message: str) -> ExpressionError:
    return ExpressionError(f"{message} at position {pos + 1} of expression\n    {text}\n    {' ' * pos}^")


# ----------------------------------------------------------------------------- nodes
class _Node(ABC):
    pos: int

    @abstractmethod
    def eval(self, ctx: EvaluationContext) -> np.ndarray:
        """Values for every subject of ``ctx``."""

    def children(self) -> tuple[_Node, ...]:
        return ()


@dataclass(frozen=True)
class _Number(_Node):
    value: float
    pos: int

    def eval(self, ctx):
        return np.full(ctx.n, self.value)


@dataclass(frozen=True)
class _String(_Node):
    value: str
    pos: int

    def eval(self, ctx):
        out = np.empty(ctx.n, dtype=object)
        out[:] = self.value
        return out


@dataclass(frozen=True)
class _Name(_Node):
    name: str
    session: str | None
    pos: int

    def eval(self, ctx):
        values = np.asarray(ctx.value(self.name, self.session))
        if values.shape != (ctx.n,):
            raise ExpressionError(f"variable {self.name!r} has shape {values.shape}, expected ({ctx.n},)")
        if values.dtype.kind in "biuf":
            return values.astype(float)
        return values.astype(object)


@dataclass(frozen=True)
class _Unary(_Node):
    op: str
    operand: _Node
    pos: int

    def children(self):
        return (self.operand,)

    def eval(self, ctx):
        value = self.operand.eval(ctx)
        if self.op == "-":
            return -_numeric(value, "-", self.operand)
        return _not(_numeric(value, "not", self.operand))


@dataclass(frozen=True)
class _Binary(_Node):
    op: str
    left: _Node
    right: _Node
    pos: int

    def children(self):
        return (self.left, self.right)

    def eval(self, ctx):
        a = self.left.eval(ctx)
        b = self.right.eval(ctx)
        if self.op in ("==", "!=") and (a.dtype == object or b.dtype == object):
            return _text_equal(a, b, negate=self.op == "!=")
        a = _numeric(a, self.op, self.left)
        b = _numeric(b, self.op, self.right)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _BINARY[self.op](a, b)
        if self.op in _COMPARISONS:
            out = np.where(np.isnan(a) | np.isnan(b), np.nan, out.astype(float))
        return np.where(np.isfinite(out), out, np.nan)


@dataclass(frozen=True)
class _Call(_Node):
    func: str
    args: tuple[_Node, ...]
    pos: int

    def children(self):
        return self.args

    def eval(self, ctx):
        values = [arg.eval(ctx) for arg in self.args]
        if self.func == "coalesce":
            out = values[0].copy()
            for value in values[1:]:
                missing = _is_missing(out)
                out[missing] = value[missing]
            return out
        if self.func == "where":
            cond = _numeric(values[0], "where", self.args[0])
            a, b = values[1], values[2]
            if a.dtype == object or b.dtype == object:
                out = np.where(cond == 1.0, a.astype(object), b.astype(object))
                out[np.isnan(cond)] = None
                return out
            return np.where(np.isnan(cond), np.nan, np.where(cond == 1.0, a, b))
        if self.func == "isna":
            return _is_missing(values[0]).astype(float)
        numbers = [_numeric(v, self.func, arg) for v, arg in zip(values, self.args)]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = _FUNCTIONS[self.func][1](numbers)
        return np.where(np.isfinite(out), out, np.nan)


_BINARY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
    "and": lambda a, b: _and(a, b),
    "or": lambda a, b: _not(_and(_not(a), _not(b))),
}
_COMPARISONS = {"<", "<=", ">", ">=", "==", "!="}

# name -> (number of arguments: int, or -1 for one or more, function of the list of arrays)
_FUNCTIONS: dict[str, tuple[int, Callable[[list[np.ndarray]], np.ndarray]]] = {
    "abs": (1, lambda v: np.abs(v[0])),
    "sqrt": (1, lambda v: np.where(v[0] >= 0, np.sqrt(np.abs(v[0])), np.nan)),
    "log": (1, lambda v: np.where(v[0] > 0, np.log(np.abs(v[0]) + (v[0] == 0)), np.nan)),
    "exp": (1, lambda v: np.exp(v[0])),
    "min": (-1, lambda v: np.min(np.vstack(v), axis=0)),
    "max": (-1, lambda v: np.max(np.vstack(v), axis=0)),
    "mean": (-1, lambda v: np.mean(np.vstack(v), axis=0)),
    "isna": (1, None),
    "coalesce": (-1, None),
    "where": (3, None),
}


def _is_missing(values: np.ndarray) -> np.ndarray:
    if values.dtype == object:
        return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values], dtype=bool)
    return np.isnan(values)


def _numeric(values: np.ndarray, op: str, node: _Node) -> np.ndarray:
    if values.dtype != object:
        return values
    present = [v for v in values if v is not None]
    if all(isinstance(v, (int, float)) for v in present):
        return np.array([np.nan if v is None else float(v) for v in values])
    what = f"variable {node.name!r}" if isinstance(node, _Name) else "its operand"
    raise ExpressionError(f"{op!r} needs numbers, but {what} holds text (e.g. {present[0]!r})")


def _text_equal(a: np.ndarray, b: np.ndarray, *, negate: bool) -> np.ndarray:
    out = np.empty(len(a))
    for i, (x, y) in enumerate(zip(a, b)):
        if x is None or y is None or (isinstance(x, float) and math.isnan(x)) or (
            isinstance(y, float) and math.isnan(y)
        ):
            out[i] = np.nan
        else:
            out[i] = float((str(x) == str(y)) != negate)
    return out


def _not(a: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a), np.nan, (a == 0).astype(float))


def _and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    false = ((a == 0) & ~np.isnan(a)) | ((b == 0) & ~np.isnan(b))
    unknown = np.isnan(a) | np.isnan(b)
    return np.where(false, 0.0, np.where(unknown, np.nan, 1.0))


# ----------------------------------------------------------------------------- parser
class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = _tokenize(text)
        self.i = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def take(self, *kinds: str) -> _Token | None:
        if self.tok.kind in kinds or (self.tok.kind == "op" and self.tok.text in kinds):
            token = self.tok
            self.i += 1
            return token
        return None

    def expect(self, text: str) -> _Token:
        token = self.take(text)
        if token is None:
            raise self.error(f"expected {text!r}")
        return token

    def error(self, message: str) -> ExpressionError:
        found = "end of expression" if self.tok.kind == "end" else repr(self.tok.text)
        return _error(self.text, self.tok.pos, f"{message}, found {found}")

    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise self.error("empty expression")
        node = self.or_()
        if self.tok.kind != "end":
            raise self.error("unexpected text after a complete expression")
        return node

    def or_(self) -> _Node:
        node = self.and_()
        while token := self.take("or"):
            node = _Binary("or", node, self.and_(), token.pos)
        return node

    def and_(self) -> _Node:
        node = self.not_()
        while token := self.take("and"):
            node = _Binary("and", node, self.not_(), token.pos)
        return node

    def not_(self) -> _Node:
        if token := self.take("not"):
            return _Unary("not", self.not_(), token.pos)
        return self.comparison()

    def comparison(self) -> _Node:
        node = self.additive()
        if token := self.take(*_COMPARISONS):
            node = _Binary(token.text, node, self.additive(), token.pos)
            if self.tok.kind == "op" and self.tok.text in _COMPARISONS:
                raise self.error("chained comparisons are not supported; join them with 'and'")
        return node

    def additive(self) -> _Node:
        node = self.multiplicative()
        while token := self.take("+", "-"):
            node = _Binary(token.text, node, self.multiplicative(), token.pos)
        return node

    def multiplicative(self) -> _Node:
        node = self.unary()
        while token := self.take("*", "/"):
            node = _Binary(token.text, node, self.unary(), token.pos)
        return node

    def unary(self) -> _Node:
        if token := self.take("-"):
            return _Unary("-", self.unary(), token.pos)
        if self.take("+"):
            return self.unary()
        return self.atom()

    def atom(self) -> _Node:
        token = self.tok
        if self.take("number"):
            return _Number(float(token.text), token.pos)
        if self.take("string"):
            return _String(token.text[1:-1], token.pos)
        if self.take("true", "false"):
            return _Number(1.0 if token.kind == "true" else 0.0, token.pos)
        if self.take("("):
            node = self.or_()
            self.expect(")")
            return node
        if self.take("name"):
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(token)
            session = None
            if self.tok.kind == "session":
                label = self.tok.text[1:-1].strip()
                if not _SESSION_RE.match(label):
                    raise _error(self.text, self.tok.pos, f"bad session reference [{label}] (use e.g. [ses-1] or [TP1])")
                session = label
                self.i += 1
            return _Name(token.text, session, token.pos)
        raise self.error("expected a number, a variable, a function call or '('")

    def call(self, name: _Token) -> _Node:
        if name.text not in _FUNCTIONS:
            raise _error(self.text, name.pos, f"unknown function {name.text!r}; known: {', '.join(sorted(_FUNCTIONS))}")
        self.expect("(")
        args: list[_Node] = []
        if not self.take(")"):
            args.append(self.or_())
            while self.take(","):
                args.append(self.or_())
            self.expect(")")
        arity = _FUNCTIONS[name.text][0]
        if (arity == -1 and not args) or (arity >= 0 and len(args) != arity):
            wanted = "one or more" if arity == -1 else str(arity)
            raise _error(self.text, name.pos, f"function {name.text!r} takes {wanted} arguments, got {len(args)}")
        return _Call(name.text, tuple(args), name.pos)


@dataclass(frozen=True)
class Expression:
    """A parsed expression.

    Attributes
    ----------
    text : str
        The source text.
    """

    text: str
    _root: _Node

    def names(self) -> set[tuple[str, str | None]]:
        """The ``(name, session)`` pairs the expression reads (session None: subject level)."""
        found: set[tuple[str, str | None]] = set()
        stack = [self._root]
        while stack:
            node = stack.pop()
            if isinstance(node, _Name):
                found.add((node.name, node.session))
            stack.extend(node.children())
        return found

    def evaluate(self, ctx: EvaluationContext) -> np.ndarray:
        """Evaluate for every subject of ``ctx``; shape ``(ctx.n,)``, float or object."""
        try:
            return self._root.eval(ctx)
        except ExpressionError as exc:
            raise ExpressionError(f"in expression {self.text!r}: {exc}") from None


def parse_expression(text: str) -> Expression:
    """Parse ``text`` into an :class:`Expression`; raise :class:`ExpressionError` if invalid."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, got {type(text).__name__}: {text!r}")
    return Expression(text, _Parser(text).parse())
