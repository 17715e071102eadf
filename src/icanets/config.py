"""The study configuration: a TOML file naming the dataset, its filters and variables.

Example
-------
.. code-block:: toml

    [study]
    name = "ketamine"
    dataset = "bids"              # relative to this file
    mask = "mask.nii.gz"          # optional

    [bold]                        # which BOLD files to use (BIDS entities)
    task = "rest"
    space = "MNI152NLin6Asym"
    desc = "preproc"

    [participants]
    group = "group"               # the column that holds the group
    required = ["group", "age", "sex"]
    numeric = ["age"]
    categorical = ["group", "sex"]

    [sessions]
    numeric = ["hdrs"]
    [sessions.roles]              # names the analyses use for session labels
    TP1 = "ses-1"
    TP2 = "ses-2"
    TP3 = "ses-3"

    [derived]                     # evaluated in this order; see icanets.expr
    remitter = "hdrs[TP3] <= 7"
    hdrs_change_pct = "100 * (hdrs[TP1] - hdrs[TP3]) / hdrs[TP1]"

Unknown sections or keys, and values of the wrong type, raise :class:`ConfigError` naming
the key and its line in the file, before any work starts.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from icanets.errors import ConfigError, ExpressionError
from icanets.expr import Expression, parse_expression
from icanets.io.bids import ENTITY_ORDER

__all__ = ["StudyConfig", "load_config", "config_from_dict"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILTER_ENTITIES = tuple(e for e in ENTITY_ORDER if e not in ("sub", "ses", "run"))


@dataclass(frozen=True)
class StudyConfig:
    """A validated study configuration.

    Attributes
    ----------
    name : str
        The study's name (for reports).
    dataset : Path or None
        The BIDS dataset folder, absolute.
    mask : Path or None
        A brain mask image, absolute, or None (derived from the data later).
    bold_filters : dict
        BIDS entity -> label that BOLD files must carry.
    group_column : str
        The ``participants.tsv`` column holding the group.
    required_columns : tuple of str
        Columns ``participants.tsv`` must have.
    numeric_columns, categorical_columns : tuple of str
        Subject-level columns with a declared type.
    session_numeric : tuple of str
        Per-session measures (``sessions.tsv`` columns) that must be numeric.
    session_roles : dict
        Role name (e.g. ``"TP1"``) -> session label (``"ses-1"``).
    derived : dict
        Variable name -> parsed :class:`~icanets.expr.Expression`, in declaration order.
    source : Path or None
        The TOML file this came from.
    """

    name: str = "study"
    dataset: Path | None = None
    mask: Path | None = None
    bold_filters: Mapping[str, str] = field(default_factory=dict)
    group_column: str = "group"
    required_columns: tuple[str, ...] = ()
    numeric_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    session_numeric: tuple[str, ...] = ()
    session_roles: Mapping[str, str] = field(default_factory=dict)
    derived: Mapping[str, Expression] = field(default_factory=dict)
    source: Path | None = None

    def resolve_session(self, label: str) -> str:
        """Map a role (``TP1``) or a label (``ses-1``) to a session label."""
        return self.session_roles.get(label, label)


# section -> key -> (accepted python types, description)
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "study": {
        "name": ((str,), "the study's name"),
        "dataset": ((str,), "path of the BIDS dataset"),
        "mask": ((str,), "path of a brain mask image"),
    },
    "bold": {key: ((str,), f"required '{key}' entity of BOLD files") for key in _FILTER_ENTITIES},
    "participants": {
        "group": ((str,), "column holding the group"),
        "required": ((list,), "columns participants.tsv must have"),
        "numeric": ((list,), "numeric columns"),
        "categorical": ((list,), "categorical columns"),
    },
    "sessions": {
        "numeric": ((list,), "numeric per-session measures"),
        "roles": ((dict,), "role name -> session label"),
    },
    "derived": {},  # free names -> expression strings
}


def _line_of(text: str, section: str | None, key: str) -> int | None:
    """Line number (1-based) of ``key = ...`` in ``[section]`` of a TOML text, if found."""
    current = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\]]+?)\s*\]", stripped)
        if header:
            current = header.group(1)
            if section is not None and key == "" and current == section:
                return number
            continue
        if re.match(rf"^[\"']?{re.escape(key)}[\"']?\s*=", stripped) and (
            section is None or current == section or (current or "").startswith(section + ".")
        ):
            return number
    return None


class _Reporter:
    def __init__(self, path: Path | None, text: str):
        self.path = path
        self.text = text

    def error(self, section: str | None, key: str, message: str) -> ConfigError:
        where = str(self.path) if self.path else "config"
        line = _line_of(self.text, section, key) if self.text else None
        if line is not None:
            where += f", line {line}"
        name = f"[{section}] {key}" if section and key else (f"[{section}]" if section else key)
        return ConfigError(f"{where}: {name}: {message}")


def load_config(path: Path | str) -> StudyConfig:
    """Read and validate a study configuration TOML file.

    Relative paths in it are relative to the file's folder.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read study config {path}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return config_from_dict(data, base=path.parent.resolve(), source=path, text=text)


def config_from_dict(
    data: Mapping[str, Any], *, base: Path | None = None, source: Path | None = None, text: str = ""
) -> StudyConfig:
    """Validate a configuration given as a dict (as parsed from TOML).

    Parameters
    ----------
    data : dict
        Sections as in the TOML file.
    base : Path, optional
        The folder relative paths are resolved against (default: the current folder).
    """
    rep = _Reporter(source, text)
    base = Path(base) if base is not None else Path.cwd()
    for section, body in data.items():
        if section not in _SCHEMA:
            raise rep.error(None, section, f"unknown section; known sections: {', '.join(_SCHEMA)}")
        if not isinstance(body, dict):
            raise rep.error(None, section, f"must be a table [{section}], got {type(body).__name__}")
        if section == "derived":
            continue
        for key, value in body.items():
            if key not in _SCHEMA[section]:
                known = ", ".join(_SCHEMA[section])
                raise rep.error(section, key, f"unknown key; known keys in [{section}]: {known}")
            types, what = _SCHEMA[section][key]
            if not isinstance(value, types):
                wanted = " or ".join("list" if t is list else "table" if t is dict else "text" for t in types)
                raise rep.error(section, key, f"{what} must be {wanted}, got {type(value).__name__} {value!r}")
            if isinstance(value, list) and not all(isinstance(v, str) for v in value):
                raise rep.error(section, key, f"{what} must be a list of text, got {value!r}")

    study = data.get("study", {})
    participants = data.get("participants", {})
    sessions = data.get("sessions", {})

    roles: dict[str, str] = {}
    for role, label in sessions.get("roles", {}).items():
        if not isinstance(label, str) or not re.match(r"^ses-[A-Za-z0-9]+$", label):
            raise rep.error("sessions.roles", role, f"must be a session label like 'ses-1', got {label!r}")
        if not _NAME_RE.match(role):
            raise rep.error("sessions.roles", role, "role names must be identifiers (letters, digits, _)")
        roles[role] = label

    derived: dict[str, Expression] = {}
    for name, text_expr in data.get("derived", {}).items():
        if not _NAME_RE.match(name):
            raise rep.error("derived", name, "a derived variable's name must be an identifier (letters, digits, _)")
        if not isinstance(text_expr, str):
            raise rep.error("derived", name, f"must be an expression in quotes, got {type(text_expr).__name__}")
        try:
            expression = parse_expression(text_expr)
        except ExpressionError as exc:
            raise rep.error("derived", name, str(exc)) from None
        for ref, session in expression.names():
            if session is not None and not session.startswith("ses-") and session not in roles:
                raise rep.error(
                    "derived", name,
                    f"session {session!r} in {ref}[{session}] is neither a label 'ses-<label>' nor a role "
                    f"declared in [sessions.roles] ({', '.join(roles) or 'none declared'})",
                )
        derived[name] = expression

    def _path(key: str) -> Path | None:
        value = study.get(key)
        return None if value is None else (base / value).resolve()

    return StudyConfig(
        name=study.get("name", "study"),
        dataset=_path("dataset"),
        mask=_path("mask"),
        bold_filters=dict(data.get("bold", {})),
        group_column=participants.get("group", "group"),
        required_columns=tuple(participants.get("required", ())),
        numeric_columns=tuple(participants.get("numeric", ())),
        categorical_columns=tuple(participants.get("categorical", ())),
        session_numeric=tuple(sessions.get("numeric", ())),
        session_roles=roles,
        derived=derived,
        source=source,
    )
