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

from icanets._defaults import DEFAULT_MIN_VOLUMES, DEFAULT_TAILS, HCP_DEFAULTS, LAYOUTS, PREDICT_DEFAULTS
from icanets._defaults import ORDER_METHODS as _ORDER_METHODS
from icanets.errors import ConfigError, ExpressionError
from icanets.expr import Expression, parse_expression
from icanets.io.bids import ENTITY_ORDER

__all__ = ["StudyConfig", "AnalysisSpec", "PosthocSpec", "PredictSpec", "load_config", "config_from_dict"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FILTER_ENTITIES = tuple(e for e in ENTITY_ORDER if e not in ("sub", "ses", "run"))


@dataclass(frozen=True)
class AnalysisSpec:
    """One edge-wise GLM analysis declared in ``[analyses.<name>]``.

    Attributes
    ----------
    name : str
    description : str
    subset : Expression or None
        Subjects to include (evaluated over subject variables; missing counts as false).
    session : str or None
        Use the rows of this session (label or role).
    paired : tuple of (str, str) or None
        ``(first, second)``: one-sample test of ``second - first`` by sign flipping.
    difference : tuple of (str, str) or None
        ``(first, second)``: analyse ``second - first`` with ``formula`` (between subjects).
    formula : str or None
    contrasts : dict
        Name -> linear combination of design columns.
    ftests : dict
        Name -> contrast names.
    exchangeability : str
        ``permute``, ``flip`` or ``permute+flip``.
    blocks : str or None
        Variable holding exchangeability blocks.
    whole_blocks : bool
    n_perm, tails, method, seed : as :func:`icanets.glm.permutation_glm`
    nbs_threshold : float or None
    nbs_measure : str
    fwe_across : bool
    """

    name: str
    description: str = ""
    subset: Expression | None = None
    session: str | None = None
    paired: tuple[str, str] | None = None
    difference: tuple[str, str] | None = None
    formula: str | None = None
    contrasts: Mapping[str, str] = field(default_factory=dict)
    ftests: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    exchangeability: str = "permute"
    blocks: str | None = None
    whole_blocks: bool = False
    n_perm: int = 5000
    tails: int = DEFAULT_TAILS
    method: str = "freedman-lane"
    seed: int = 0
    nbs_threshold: float | None = None
    nbs_measure: str = "extent"
    fwe_across: bool = False


@dataclass(frozen=True)
class PosthocSpec:
    """Post-hoc statistics on significant edges (``[posthoc]``).

    Attributes
    ----------
    patients : Expression or None
        Which subjects are patients (for clinical correlations and the mixed model).
    baseline, followup : str or None
        Sessions (labels or roles) of the change ``followup - baseline``; default the
        first and last session.
    clinical : str or None
        Subject variable the FC is correlated with (e.g. ``hdrs_change_pct``).
    remission : str or None
        Binary subject variable of the time x remission mixed model.
    measure : str or None
        Per-session measure of the repeated-measures ANOVA (e.g. ``hdrs``).
    demographics : tuple of str
        Variables of the demographics table (besides N and sex).
    sex : str or None
        Column holding sex; ``female`` its value for women.
    edges : tuple of (str, str)
        Edges always analysed (node names or 0-based indices as text).
    alpha : float
        Significance of the FWE-corrected p for an edge to be followed up.
    """

    patients: Expression | None = None
    baseline: str | None = None
    followup: str | None = None
    clinical: str | None = None
    remission: str | None = None
    measure: str | None = None
    demographics: tuple[str, ...] = ()
    sex: str | None = "sex"
    female: str = "F"
    edges: tuple[tuple[str, str], ...] = ()
    alpha: float = 0.05


@dataclass(frozen=True)
class PredictSpec:
    """One cross-validated prediction declared in ``[predict.<name>]`` (see :mod:`icanets.predict`).

    Attributes
    ----------
    name, description : str
    target : str
        Subject variable to predict: continuous (e.g. ``hdrs_change_pct``) or binary 0/1
        (e.g. ``remitter``).
    kind : {"auto", "continuous", "binary"}
        ``auto``: binary when the target only holds 0 and 1.
    subset : Expression or None
    session : str or None
        Predict from this session's edges (label or role); or
    difference : tuple of (str, str) or None
        from the change of the edges ``second - first``.
    model : {"ridge", "cpm", "logistic"}
        Ridge regression (continuous) or the ridge classifier (binary) on all edges, penalty
        tuned in each training fold; connectome-based predictive modelling; or (binary) L2
        logistic regression with nested tuning.
    confounds : tuple of str
        Subject variables regressed out of the edges inside each training fold.
    folds, repeats : int
        Repeated stratified k-fold cross-validation.
    cv : {"kfold", "loo"}
    n_perm : int
        Permutations of the whole cross-validated procedure.
    n_boot : int
        Bootstrap resamples of the intervals.
    seed : int
    threshold : float
        CPM's edge-selection p.
    network : {"both", "positive", "negative"}
        CPM's networks.
    consensus : float
        Edges selected in at least this fraction of the fits are reported as consensus edges.
    """

    name: str
    target: str
    description: str = ""
    kind: str = "auto"
    subset: Expression | None = None
    session: str | None = None
    difference: tuple[str, str] | None = None
    model: str = "ridge"
    confounds: tuple[str, ...] = ()
    folds: int = PREDICT_DEFAULTS["folds"]
    repeats: int = PREDICT_DEFAULTS["repeats"]
    cv: str = "kfold"
    n_perm: int = PREDICT_DEFAULTS["n_perm"]
    n_boot: int = PREDICT_DEFAULTS["n_boot"]
    seed: int = 0
    threshold: float = PREDICT_DEFAULTS["threshold"]
    network: str = "both"
    consensus: float = PREDICT_DEFAULTS["consensus"]


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
    layout : {"bids", "hcp"}
        ``[study] layout``: a BIDS dataset, or HCP pipeline outputs
        (``<subject>/MNINonLinear/Results/<run>/<run>_Atlas*.dtseries.nii``; see
        :func:`icanets.io.bids.find_hcp_files`).
    hcp : dict
        ``[hcp]`` patterns of the HCP layout (with the defaults of
        :data:`icanets._defaults.HCP_DEFAULTS`); empty for BIDS.
    sessions_table : Path or None
        ``[study] sessions``: one table of every subject's sessions, instead of BIDS'
        ``sub-<label>/sub-<label>_sessions.tsv`` (default for the HCP layout:
        ``sessions.tsv`` in the dataset folder, when there is one).
    bold_filters : dict
        BIDS entity -> label that BOLD files must carry.
    min_volumes : int
        Fewest volumes a BOLD run may have (``[bold] min_volumes``); shorter runs are an error
        (a run of a few volumes would shift its subject's netmat and the r-to-z scale of all).
    surfaces : tuple of Path
        ``[bold] surfaces``: GIFTI meshes of the CIFTI runs' cortical surfaces (e.g. HCP's
        ``L.midthickness`` and ``R.midthickness``), for the classifier's spatial features and
        the report's surface views.
    levels : dict
        Column -> the values it may hold (``[participants] levels``); others are an error.
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
    analyses : dict
        Analysis name -> :class:`AnalysisSpec`, in declaration order.
    posthoc : PosthocSpec
    predict : dict
        Prediction name -> :class:`PredictSpec`, in declaration order.
    ica, netmats : dict
        Settings of the group ICA and netmats stages (see :mod:`icanets.pipeline`).
    motion : dict
        ``[motion]``: where head-motion files come from, FD's threshold and the exclusion
        rules (see :class:`icanets.qc.MotionSettings`).
    anatomy : dict
        ``[anatomy]``: the atlas (image and label table, resolved paths) that names the nodes
        (see :mod:`icanets.io.atlas`).
    inputs : dict
        Artifacts a user brings to enter the pipeline later (paths, absolute).
    run : dict
        Execution settings (``n_jobs``, ``scheduler``).
    source : Path or None
        The TOML file this came from.
    """

    name: str = "study"
    dataset: Path | None = None
    mask: Path | None = None
    layout: str = "bids"
    hcp: Mapping[str, str] = field(default_factory=dict)
    sessions_table: Path | None = None
    bold_filters: Mapping[str, str] = field(default_factory=dict)
    min_volumes: int = DEFAULT_MIN_VOLUMES
    surfaces: tuple[Path, ...] = ()
    levels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    group_column: str = "group"
    required_columns: tuple[str, ...] = ()
    numeric_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()
    session_numeric: tuple[str, ...] = ()
    session_roles: Mapping[str, str] = field(default_factory=dict)
    derived: Mapping[str, Expression] = field(default_factory=dict)
    analyses: Mapping[str, AnalysisSpec] = field(default_factory=dict)
    posthoc: PosthocSpec = field(default_factory=PosthocSpec)
    predict: Mapping[str, PredictSpec] = field(default_factory=dict)
    ica: Mapping[str, Any] = field(default_factory=dict)
    netmats: Mapping[str, Any] = field(default_factory=dict)
    motion: Mapping[str, Any] = field(default_factory=dict)
    anatomy: Mapping[str, Any] = field(default_factory=dict)
    inputs: Mapping[str, Path] = field(default_factory=dict)
    run: Mapping[str, Any] = field(default_factory=dict)
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
        "layout": ((str,), "the dataset's layout: bids or hcp (HCP pipeline outputs)"),
        "sessions": ((str,), "one sessions table of every subject (participant_id, session_id, measures)"),
    },
    "hcp": {
        "subject": ((str,), "regular expression of a subject folder's name (named groups sub, optionally ses)"),
        "results": ((str,), "folder of the runs inside a subject folder"),
        "run": ((str,), "regular expression of a run folder's name (named groups task, run, dir, acq, ses)"),
        "file": ((str,), "the run's image in its folder ({run}: the folder's name; a glob)"),
    },
    "bold": {**{key: ((str,), f"required '{key}' entity of BOLD files") for key in _FILTER_ENTITIES},
             "min_volumes": ((int,), "fewest volumes a run may have"),
             "surfaces": ((list,), "GIFTI surfaces (.surf.gii) of CIFTI runs' cortical structures")},
    "participants": {
        "group": ((str,), "column holding the group"),
        "required": ((list,), "columns participants.tsv must have"),
        "numeric": ((list,), "numeric columns"),
        "categorical": ((list,), "categorical columns"),
        "levels": ((dict,), "column -> the only values it may hold"),
    },
    "sessions": {
        "numeric": ((list,), "numeric per-session measures"),
        "roles": ((dict,), "role name -> session label"),
    },
    "derived": {},  # free names -> expression strings
    "analyses": {},  # free names -> tables, see _ANALYSIS_KEYS
    "predict": {},  # free names -> tables, see _PREDICT_KEYS
    "ica": {
        "dimension": ((int, str), "number of components, or reproducibility/consistency/laplace/bic/mdl/aic"),
        "max_dimension": ((int,), "largest estimated dimension"),
        "n_internal": ((int,), "MIGP internal dimension"),
        "exact": ((bool,), "exact concatenation PCA instead of MIGP"),
        "variance_normalise": ((bool,), "voxel-wise variance normalisation"),
        "highpass": ((float, int), "high-pass cutoff (s) before the group PCA"),
        "run_components": ((float, int, str), "whitened principal directions per run (auto, fraction or count)"),
        "refine_maps": ((bool,), "replace the ICA maps by their back-reconstruction"),
        "dr_threshold": ((float, int), "|z| at or below which map voxels are not dual regression regressors"),
        "precision": ((str,), "float32 or float64: the runs' precision through every pass"),
        "seed": ((int,), "random seed"),
        "n_repeats": ((int,), "FastICA repeats for stability"),
        "approach": ((str,), "FastICA's approach: deflation or symmetric"),
        "nonlinearity": ((str,), "FastICA's contrast: pow3, tanh or gauss"),
        "dimension_timepoints": ((int,), "time points used to estimate the dimension"),
        "labels": ((str,), "FIX-style labels file overriding the classification"),
        # Thresholds of the component classifier (icanets.ica.classify.ClassifierSettings).
        "z_threshold": ((float, int), "suprathreshold |z| of the spatial features"),
        "max_edge": ((float, int), "largest rim excess of a signal map"),
        "max_csf": ((float, int), "largest CSF excess of a signal map"),
        "min_cluster": ((float, int), "cluster fraction below which (with low smoothness) a map is unstructured"),
        "min_smoothness": ((float, int), "smoothness below which (with few clusters) a map is unstructured"),
        "max_hf": ((float, int), "largest high-frequency power fraction of a signal time course"),
        "max_lf": ((float, int), "largest drift power fraction of a signal time course"),
        "clean_edge": ((float, int), "largest rim excess of a clean map"),
        "clean_csf": ((float, int), "largest CSF excess of a clean map"),
        "clean_cluster": ((float, int), "smallest cluster fraction of a clean map"),
        "clean_smoothness": ((float, int), "smallest smoothness of a clean map"),
        "clean_negative": ((float, int), "largest negative fraction of a clean map"),
        "min_stability": ((float, int), "stability below which a component is uncertain"),
        "hf_cutoff": ((float, int), "high-frequency cutoff (Hz)"),
        "lf_cutoff": ((float, int), "drift cutoff (Hz)"),
        "spike_threshold": ((float, int), "robust SDs above which a frame is a spike"),
        "csf_contrast": ((float, int), "brightness over the local mean above which voxels are CSF-like"),
        "keep_uncertain": ((bool,), "keep uncertain components as nodes"),
        "max_motion": ((float, int), "largest motion correlation of a signal time course (off unless set)"),
        "min_shadow_fit": ((float, int), "smallest gradient fit of a misregistration shadow"),
        "min_shadow_coupling": ((float, int), "smallest run coupling of a misregistration shadow with its node"),
        "min_shadow_flips": ((float, int), "smallest share of runs where a shadow's coupling has the minority sign"),
    },
    "netmats": {
        "partial": ((str,), "estimator of the analysed netmats"),
        "rho": ((float, int), "ridgep regularisation"),
        "alpha": ((float, int), "glasso regularisation"),
        "full": ((str,), "estimator whose group z orders the nodes"),
        "varnorm": ((int,), "variance normalisation 0, 1 or 2"),
        "aggressive": ((bool,), "regress bad nodes out of good ones"),
        "rtoz": ((str,), "fslnets, fisher or none"),
        "seed": ((int,), "seed of the r-to-z null"),
        "null_runs": ((int,), "null runs of the r-to-z scale"),
        "n_clusters": ((int,), "Ward clusters"),
        "min_timepoints": ((int,), "fewest time points of a run's node time series"),
    },
    "motion": {
        "source": ((str,), "where motion files come from: auto, fmriprep, hcp, fsl or none"),
        "columns": ((list,), "six motion columns of a confounds TSV: translations x y z, rotations x y z"),
        "rotations": ((str,), "units of those rotation columns: radians or degrees"),
        "head_radius": ((float, int), "mm of arc per radian in framewise displacement"),
        "fd_threshold": ((float, int), "FD (mm) above which a volume is high-motion"),
        "max_mean_fd": ((float, int), "runs with a larger mean FD (mm) are excluded"),
        "max_fraction_censored": ((float, int), "runs with a larger fraction of high-motion volumes are excluded"),
        "min_volumes_kept": ((int,), "runs with fewer low-motion volumes are excluded"),
        "fd_tolerance": ((float, int), "largest difference (mm) between a file's FD column and the computed FD"),
        "qcfc_covariates": ((list,), "subject variables partialled out of QC-FC"),
        "denoise": ((str,), "confound strategy of nilearn's load_confounds_strategy (fMRIPrep runs), or none"),
        "denoise_options": ((dict,), "keyword arguments of load_confounds_strategy, e.g. { motion = \"full\" }"),
        "censor": ((bool,), "leave volumes with FD above fd_threshold out of the analysis"),
    },
    "anatomy": {
        "atlas": ((str,), "a 3D label image naming the nodes"),
        "labels": ((str,), "its label table: TSV with index and name, or 'index name' lines"),
        "name": ((str,), "the atlas' name in tables"),
        "nilearn": ((bool,), "also use nilearn's Harvard-Oxford and Yeo atlases when already downloaded"),
        "z_threshold": ((float, int), "|z| above which a map's voxels count for its anatomy"),
    },
    "inputs": {
        "melodic_ic": ((str,), "group maps to use instead of running group ICA"),
        "labels": ((str,), "FIX-style labels file of those maps"),
        "dr_stage1": ((str,), "folder of dual regression stage-1 time series"),
        "subjects": ((str,), "table mapping dr_stage1 file numbers to subjects"),
        "edges": ((str,), "edge table (.npy) to analyse directly"),
    },
    "run": {
        "n_jobs": ((int,), "worker threads"),
        "scheduler": ((str,), "Dask scheduler: tcp://host:port or local:N"),
    },
    "posthoc": {
        "patients": ((str,), "expression selecting the patients"),
        "baseline": ((str,), "baseline session"),
        "followup": ((str,), "follow-up session"),
        "clinical": ((str,), "clinical variable correlated with FC"),
        "remission": ((str,), "binary remission variable"),
        "measure": ((str,), "per-session measure of the repeated-measures ANOVA"),
        "demographics": ((list,), "variables of the demographics table"),
        "sex": ((str,), "column holding sex"),
        "female": ((str,), "value of the sex column for women"),
        "edges": ((list,), "edges always analysed, as [node, node] pairs"),
        "alpha": ((float, int), "FWE level of the edges followed up"),
    },
}

_ANALYSIS_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "description": ((str,), "what the analysis tests"),
    "subset": ((str,), "expression selecting subjects"),
    "session": ((str,), "session (label or role)"),
    "paired": ((list,), "[first, second] sessions of a paired test"),
    "difference": ((list,), "[first, second] sessions whose difference is analysed"),
    "formula": ((str,), "design formula"),
    "contrasts": ((dict,), "contrast name -> expression over design columns"),
    "ftests": ((dict,), "F-test name -> list of contrasts"),
    "exchangeability": ((str,), "permute, flip or permute+flip"),
    "blocks": ((str,), "variable holding exchangeability blocks"),
    "whole_blocks": ((bool,), "permute whole blocks"),
    "n_perm": ((int,), "number of permutations"),
    "tails": ((int,), "1 or 2"),
    "method": ((str,), "freedman-lane, ter-braak or draper-stoneman"),
    "seed": ((int,), "random seed"),
    "nbs_threshold": ((float, int), "NBS primary threshold"),
    "nbs_measure": ((str,), "extent or intensity"),
    "fwe_across": ((bool,), "FWE over all contrasts too"),
}


_PREDICT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "description": ((str,), "what is predicted"),
    "target": ((str,), "subject variable to predict"),
    "kind": ((str,), "auto, continuous or binary"),
    "subset": ((str,), "expression selecting subjects"),
    "session": ((str,), "session (label or role) whose edges predict"),
    "difference": ((list,), "[first, second] sessions whose edge change predicts"),
    "model": ((str,), "ridge, cpm or logistic"),
    "confounds": ((list,), "variables regressed out of the edges inside each training fold"),
    "folds": ((int,), "folds of the cross-validation"),
    "repeats": ((int,), "repeats of the cross-validation"),
    "cv": ((str,), "kfold or loo"),
    "n_perm": ((int,), "permutations of the whole procedure"),
    "n_boot": ((int,), "bootstrap resamples"),
    "seed": ((int,), "random seed"),
    "threshold": ((float, int), "CPM edge-selection p"),
    "network": ((str,), "CPM networks: both, positive or negative"),
    "consensus": ((float, int), "fraction of fits selecting an edge for it to be a consensus edge"),
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
        if section in ("derived", "analyses", "predict"):
            continue
        for key, value in body.items():
            if key not in _SCHEMA[section]:
                known = ", ".join(_SCHEMA[section])
                raise rep.error(section, key, f"unknown key; known keys in [{section}]: {known}")
            types, what = _SCHEMA[section][key]
            if not isinstance(value, types):
                wanted = " or ".join("list" if t is list else "table" if t is dict else "text" for t in types)
                raise rep.error(section, key, f"{what} must be {wanted}, got {type(value).__name__} {value!r}")
            if isinstance(value, list) and (section, key) != ("posthoc", "edges") \
                    and not all(isinstance(v, str) for v in value):  # edges: pairs, checked by their parser
                raise rep.error(section, key, f"{what} must be a list of text, got {value!r}")

    study = data.get("study", {})
    participants = data.get("participants", {})
    sessions = data.get("sessions", {})
    bold = dict(data.get("bold", {}))
    min_volumes = bold.pop("min_volumes", DEFAULT_MIN_VOLUMES)
    surfaces = []
    for value in bold.pop("surfaces", []):
        path = (base / value).resolve()
        if not path.is_file():
            raise rep.error("bold", "surfaces", f"file not found: {path}")
        surfaces.append(path)
    if min_volumes < 2:
        raise rep.error("bold", "min_volumes", f"must be at least 2, got {min_volumes}")
    levels: dict[str, tuple[str, ...]] = {}
    for column, values in participants.get("levels", {}).items():
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            raise rep.error("participants", "levels",
                            f"{column} must list its values as text, e.g. {column} = [\"HC\", \"MDD\"], got {values!r}")
        if len(set(values)) != len(values):
            raise rep.error("participants", "levels", f"{column} lists a value twice: {values!r}")
        levels[column] = tuple(values)

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

    ica_dim = data.get("ica", {}).get("dimension")
    if isinstance(ica_dim, str) and ica_dim not in _ORDER_METHODS:
        raise rep.error("ica", "dimension", f"must be a number or one of {', '.join(_ORDER_METHODS)}, "
                                            f"got {ica_dim!r}")
    if isinstance(ica_dim, int) and ica_dim < 1:
        raise rep.error("ica", "dimension", f"must be at least 1, got {ica_dim}")
    nm = data.get("netmats", {})
    if nm.get("varnorm", 0) not in (0, 1, 2):
        raise rep.error("netmats", "varnorm", f"must be 0, 1 or 2, got {nm.get('varnorm')!r}")
    if "rtoz" in nm and nm["rtoz"] not in ("fslnets", "fisher", "none"):
        raise rep.error("netmats", "rtoz", f"must be fslnets, fisher or none, got {nm['rtoz']!r}")
    for key in ("partial", "full"):
        if key in nm and nm[key] not in ("cov", "amp", "corr", "rcorr", "partial", "ridgep", "glasso", "lw_partial",
                                         "tangent"):
            raise rep.error("netmats", key, f"unknown estimator {nm[key]!r}")
    motion = dict(data.get("motion", {}))
    _check_motion(motion, rep)
    anatomy = dict(data.get("anatomy", {}))
    dlabel = str(anatomy.get("atlas", "")).endswith(".dlabel.nii")
    if ("atlas" in anatomy) != ("labels" in anatomy) and not (dlabel and "labels" not in anatomy):
        raise rep.error("anatomy", "atlas" if "atlas" not in anatomy else "labels",
                        "an atlas needs both its image (atlas) and its label table (labels); a CIFTI .dlabel.nii "
                        "atlas holds its own")
    for key in ("atlas", "labels"):
        if key in anatomy:
            path = (base / anatomy[key]).resolve()
            if not path.is_file():
                raise rep.error("anatomy", key, f"file not found: {path}")
            anatomy[key] = path
    layout = study.get("layout", "bids")
    if layout not in LAYOUTS:
        raise rep.error("study", "layout", f"must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if data.get("hcp") and layout != "hcp":
        raise rep.error("hcp", next(iter(data["hcp"])), "[hcp] settings need [study] layout = \"hcp\"")
    scheduler = data.get("run", {}).get("scheduler")
    if scheduler is not None and not (scheduler.startswith("tcp://") or re.match(r"^local:[1-9]\d*$", scheduler)):
        raise rep.error("run", "scheduler", f"must be tcp://HOST:PORT or local:N with N >= 1, got {scheduler!r}")
    for key, value in data.get("inputs", {}).items():
        if not (base / value).exists():
            raise rep.error("inputs", key, f"file not found: {(base / value).resolve()}")
    analyses = {name: _analysis(name, body, rep, roles) for name, body in data.get("analyses", {}).items()}
    posthoc = _posthoc(data.get("posthoc", {}), rep)
    predict = {name: _prediction(name, body, rep, roles) for name, body in data.get("predict", {}).items()}

    def _path(key: str) -> Path | None:
        value = study.get(key)
        return None if value is None else (base / value).resolve()

    if "sessions" in study and not _path("sessions").is_file():
        raise rep.error("study", "sessions", f"file not found: {_path('sessions')}")
    return StudyConfig(
        name=study.get("name", "study"),
        dataset=_path("dataset"),
        mask=_path("mask"),
        layout=layout,
        hcp={**HCP_DEFAULTS, **data.get("hcp", {})} if layout == "hcp" else {},
        sessions_table=_path("sessions"),
        bold_filters=bold,
        min_volumes=min_volumes,
        surfaces=tuple(surfaces),
        levels=levels,
        group_column=participants.get("group", "group"),
        required_columns=tuple(participants.get("required", ())),
        numeric_columns=tuple(participants.get("numeric", ())),
        categorical_columns=tuple(participants.get("categorical", ())),
        session_numeric=tuple(sessions.get("numeric", ())),
        session_roles=roles,
        derived=derived,
        analyses=analyses,
        posthoc=posthoc,
        predict=predict,
        ica={k: (str((base / v).resolve()) if k == "labels" else v) for k, v in data.get("ica", {}).items()},
        netmats=dict(data.get("netmats", {})),
        motion=motion,
        anatomy=anatomy,
        inputs={k: (base / v).resolve() for k, v in data.get("inputs", {}).items()},
        run=dict(data.get("run", {})),
        source=source,
    )


def _check_motion(motion: dict, rep: _Reporter) -> None:
    from icanets.io.motion import MOTION_SOURCES

    if motion.get("source", "auto") not in MOTION_SOURCES:
        raise rep.error("motion", "source", f"must be one of {', '.join(MOTION_SOURCES)}, got {motion['source']!r}")
    if "columns" in motion and len(motion["columns"]) != 6:
        raise rep.error("motion", "columns", "must name six columns (translations x y z, rotations x y z), "
                                             f"got {len(motion['columns'])}: {motion['columns']!r}")
    if motion.get("rotations", "radians") not in ("radians", "degrees"):
        raise rep.error("motion", "rotations", f"must be radians or degrees, got {motion['rotations']!r}")
    for key in ("head_radius", "fd_threshold", "max_mean_fd", "fd_tolerance"):
        if key in motion and not motion[key] > 0:
            raise rep.error("motion", key, f"must be above 0, got {motion[key]!r}")
    if "max_fraction_censored" in motion and not 0 <= motion["max_fraction_censored"] < 1:
        raise rep.error("motion", "max_fraction_censored", f"must be in [0, 1), got {motion['max_fraction_censored']!r}")
    if "min_volumes_kept" in motion and motion["min_volumes_kept"] < 2:
        raise rep.error("motion", "min_volumes_kept", f"must be at least 2, got {motion['min_volumes_kept']!r}")
    for key in ("columns", "qcfc_covariates"):
        if key in motion:
            motion[key] = tuple(motion[key])
    from icanets.qc.denoise import DENOISE_STRATEGIES

    if motion.get("denoise", "none") not in DENOISE_STRATEGIES:
        raise rep.error("motion", "denoise", f"must be one of {', '.join(DENOISE_STRATEGIES)} (nilearn's "
                                             f"load_confounds_strategy), got {motion['denoise']!r}")
    if motion.get("denoise_options") and motion.get("denoise", "none") == "none":
        raise rep.error("motion", "denoise_options", "given without a denoise strategy")


def _parse_expression(rep: _Reporter, section: str, key: str, text: str) -> Expression:
    try:
        return parse_expression(text)
    except ExpressionError as exc:
        raise rep.error(section, key, str(exc)) from None


def _session_pair(rep: _Reporter, section: str, key: str, value: list) -> tuple[str, str]:
    if len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise rep.error(section, key, f"must list two sessions [first, second], got {value!r}")
    return value[0], value[1]


def _named_table(parent: str, noun: str, name: str, body: Any, keys: Mapping[str, tuple[tuple[type, ...], str]],
                 rep: _Reporter) -> str:
    """Check a ``[<parent>.<name>]`` table's name, keys and value types; return its section."""
    section = f"{parent}.{name}"
    if not _NAME_RE.match(name):
        raise rep.error(parent, name, f"{noun} name must be an identifier (letters, digits, _)")
    if not isinstance(body, dict):
        raise rep.error(parent, name, f"must be a table [{section}], got {type(body).__name__}")
    for key, value in body.items():
        if key not in keys:
            raise rep.error(section, key, f"unknown key; known keys: {', '.join(keys)}")
        types, what = keys[key]
        if isinstance(value, bool) and bool not in types:
            raise rep.error(section, key, f"{what} must not be true/false, got {value!r}")
        if not isinstance(value, types):
            raise rep.error(section, key, f"{what} has the wrong type {type(value).__name__}: {value!r}")
    return section


def _analysis(name: str, body: Any, rep: _Reporter, roles: Mapping[str, str]) -> AnalysisSpec:
    section = _named_table("analyses", "an analysis", name, body, _ANALYSIS_KEYS, rep)
    modes = [k for k in ("session", "paired", "difference") if k in body]
    if len(modes) > 1:
        raise rep.error(section, modes[1], f"give only one of session, paired or difference (got {', '.join(modes)})")
    paired = _session_pair(rep, section, "paired", body["paired"]) if "paired" in body else None
    difference = _session_pair(rep, section, "difference", body["difference"]) if "difference" in body else None
    for label in (body.get("session"), *(paired or ()), *(difference or ())):
        if label is not None and label not in roles and not re.match(r"^ses-[A-Za-z0-9]+$", label):
            raise rep.error(section, modes[0] if modes else "session",
                            f"session {label!r} is neither a label 'ses-<label>' nor a role ({', '.join(roles) or 'none'})")
    formula = body.get("formula")
    contrasts = dict(body.get("contrasts", {}))
    if formula is None and paired is None:
        raise rep.error(section, "", "needs a formula (or paired = [first, second])")
    if formula is not None and not contrasts:
        raise rep.error(section, "formula", "a formula needs [analyses.<name>.contrasts] (name = expression)")
    for cname, expr in contrasts.items():
        if not isinstance(expr, str):
            raise rep.error(f"{section}.contrasts", cname, f"must be an expression in quotes, got {expr!r}")
    ftests = {}
    for fname, members in body.get("ftests", {}).items():
        if not isinstance(members, list) or not all(m in contrasts for m in members):
            raise rep.error(f"{section}.ftests", fname, f"must list contrasts of this analysis ({', '.join(contrasts)})")
        ftests[fname] = tuple(members)
    exchange = body.get("exchangeability", "flip" if paired else "permute")
    if exchange not in ("permute", "flip", "permute+flip"):
        raise rep.error(section, "exchangeability", f"must be permute, flip or permute+flip, got {exchange!r}")
    tails = body.get("tails", DEFAULT_TAILS)
    if tails not in (1, 2):
        raise rep.error(section, "tails", f"must be 1 or 2, got {tails!r}")
    n_perm = body.get("n_perm", 5000)
    if n_perm < 1:
        raise rep.error(section, "n_perm", f"must be at least 1, got {n_perm}")
    method = body.get("method", "freedman-lane")
    if method not in ("freedman-lane", "ter-braak", "draper-stoneman"):
        raise rep.error(section, "method", f"must be freedman-lane, ter-braak or draper-stoneman, got {method!r}")
    measure = body.get("nbs_measure", "extent")
    if measure not in ("extent", "intensity"):
        raise rep.error(section, "nbs_measure", f"must be extent or intensity, got {measure!r}")
    return AnalysisSpec(
        name=name, description=body.get("description", ""),
        subset=_parse_expression(rep, section, "subset", body["subset"]) if "subset" in body else None,
        session=body.get("session"), paired=paired, difference=difference, formula=formula, contrasts=contrasts,
        ftests=ftests, exchangeability=exchange, blocks=body.get("blocks"), whole_blocks=body.get("whole_blocks", False),
        n_perm=n_perm, tails=tails, method=method, seed=body.get("seed", 0),
        nbs_threshold=float(body["nbs_threshold"]) if "nbs_threshold" in body else None, nbs_measure=measure,
        fwe_across=body.get("fwe_across", False))


def _posthoc(body: Mapping[str, Any], rep: _Reporter) -> PosthocSpec:
    edges = []
    for pair in body.get("edges", []):
        if not isinstance(pair, list) or len(pair) != 2:
            raise rep.error("posthoc", "edges", f"each edge must be a pair [node, node], got {pair!r}")
        edges.append((str(pair[0]), str(pair[1])))
    alpha = float(body.get("alpha", 0.05))
    if not 0 < alpha < 1:
        raise rep.error("posthoc", "alpha", f"must lie between 0 and 1, got {alpha}")
    return PosthocSpec(
        patients=_parse_expression(rep, "posthoc", "patients", body["patients"]) if "patients" in body else None,
        baseline=body.get("baseline"), followup=body.get("followup"), clinical=body.get("clinical"),
        remission=body.get("remission"), measure=body.get("measure"),
        demographics=tuple(body.get("demographics", ())), sex=body.get("sex", "sex"),
        female=body.get("female", "F"), edges=tuple(edges), alpha=alpha)


def _prediction(name: str, body: Any, rep: _Reporter, roles: Mapping[str, str]) -> PredictSpec:
    section = _named_table("predict", "a prediction's", name, body, _PREDICT_KEYS, rep)
    if "target" not in body:
        raise rep.error(section, "", "needs target = \"<variable>\" (the subject variable to predict)")
    if "session" in body and "difference" in body:
        raise rep.error(section, "difference", "give only one of session or difference")
    difference = _session_pair(rep, section, "difference", body["difference"]) if "difference" in body else None
    for label in (body.get("session"), *(difference or ())):
        if label is not None and label not in roles and not re.match(r"^ses-[A-Za-z0-9]+$", label):
            raise rep.error(section, "difference" if difference else "session",
                            f"session {label!r} is neither a label 'ses-<label>' nor a role ({', '.join(roles) or 'none'})")
    choices = {"kind": ("auto", "continuous", "binary"), "model": ("ridge", "cpm", "logistic"), "cv": ("kfold", "loo"),
               "network": ("both", "positive", "negative")}
    for key, allowed in choices.items():
        if key in body and body[key] not in allowed:
            raise rep.error(section, key, f"must be {', '.join(allowed[:-1])} or {allowed[-1]}, got {body[key]!r}")
    confounds = body.get("confounds", [])
    if not all(isinstance(c, str) for c in confounds):
        raise rep.error(section, "confounds", f"must list variable names, got {confounds!r}")
    for key, low in (("folds", 2), ("repeats", 1), ("n_perm", 0), ("n_boot", 0)):
        if key in body and body[key] < low:
            raise rep.error(section, key, f"must be at least {low}, got {body[key]}")
    for key in ("threshold", "consensus"):
        if key in body and not 0 < body[key] <= 1:
            raise rep.error(section, key, f"must lie in (0, 1], got {body[key]}")
    values = {key: body.get(key, default) for key, default in PREDICT_DEFAULTS.items()}
    return PredictSpec(
        name=name, target=body["target"], description=body.get("description", ""), kind=body.get("kind", "auto"),
        subset=_parse_expression(rep, section, "subset", body["subset"]) if "subset" in body else None,
        session=body.get("session"), difference=difference, model=body.get("model", "ridge"),
        confounds=tuple(confounds), folds=values["folds"], repeats=values["repeats"], cv=body.get("cv", "kfold"),
        n_perm=values["n_perm"], n_boot=values["n_boot"], seed=body.get("seed", 0),
        threshold=float(values["threshold"]), network=body.get("network", "both"),
        consensus=float(values["consensus"]))
