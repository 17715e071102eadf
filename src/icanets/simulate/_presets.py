"""Presets of the synthetic study: cohort size, image grid, nodes, effects."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from icanets.errors import ConfigError

__all__ = ["Preset", "PRESETS", "get_preset", "REALISM_FACTORS", "REALISM_LEVELS"]


@dataclass(frozen=True)
class Preset:
    """Parameters of a synthetic study shaped like the reference ketamine study.

    Attributes
    ----------
    name : str
    n_controls, n_patients : int
        Cohort sizes (healthy controls ``HC``, patients ``MDD``).
    n_tp2, n_tp3 : int
        Patients scanned at the second and third session (all patients at the first).
    n_retest : int
        Controls scanned a second time (session 2).
    p_two_runs : float
        Probability that a session has two runs instead of one.
    n_volumes : int
        Time points per run.
    tr : float
        Repetition time in seconds.
    resolution : float
        Voxel size in mm of the MNI-like grid.
    n_nodes : int
        Ground-truth signal nodes (Gaussian blobs).
    n_bilateral : int
        How many of them are bilateral (two mirrored blobs).
    n_artifacts : int
        Artifact components, cycling through rim/spikes, high frequency, drift and CSF.
    blob_fwhm : float
        Blob full width at half maximum in mm.
    node_amplitude, artifact_amplitude, noise_sd, baseline : float
        Signal scale (BOLD units; baseline is the mean image intensity).
    misalign : float
        SD in mm of the subject-specific shift of every node's centre.
    band : tuple of float
        Pass band of the node time courses in Hz.
    background_range : tuple of float
        Range of the background partial correlations within networks.
    subject_sd, session_sd : float
        SD of subject- and session-specific deviations of the background edges.
    effect_group, effect_treatment, effect_interaction : float
        Planted changes of partial correlation (see :mod:`icanets.simulate`).
    planted_base : float
        Partial correlation of planted edges in the reference condition.

    Realism knobs (see :data:`REALISM_FACTORS` for their off / realistic / harsh levels):

    session_shift : float
        Largest whole-head misregistration of a session along each axis, in mm (uniform in
        ``[-x, x]``; every map of the session moves together, as after imperfect
        normalisation to a template).
    shape_sd : float
        SD of the log of every node lobe's radii per subject (individual node shape).
    size_spread : float
        Node sizes vary between nodes by a factor ``exp(U(-x, x))``.
    max_extra_lobes : int
        Nodes have up to this many satellite lobes (irregular, less smooth shapes).
    amplitude_spread : float
        Node amplitudes vary between nodes by a factor ``exp(U(-x, x))`` (weak and strong nodes).
    subject_amplitude_sd, node_amplitude_sd : float
        SD of the log of the overall node amplitude per subject-session, and of each
        node's amplitude per subject-session.
    motion_spikes : float
        Mean number of brain-wide, motion-like spikes per run (Poisson): a global step
        plus an intensity gradient concentrated at the brain's edge, in a random direction
        each time.
    spike_amplitude : float
        Their size at the brain's edge, in units of ``noise_sd``.
    drift_amplitude : float
        SD of slow scanner drifts (smooth spatial patterns, different in every run), in
        units of ``noise_sd``.
    cardiac_amplitude, respiration_amplitude : float
        Physiological noise in units of ``noise_sd``: cardiac pulsation (0.9-1.3 Hz,
        aliased by the TR) in CSF and large vessels; respiration (0.2-0.35 Hz) mostly
        at the base of the brain and its edge.
    volumes_spread : float
        Runs are shortened by a fraction ``U(0, x)`` of ``n_volumes`` (unequal run lengths).
    noise_fwhm : float
        Spatial smoothness of the noise, FWHM in voxels (0: white).
    noise_ar : float
        AR(1) coefficient of the noise in time.

    Head motion (written as fMRIPrep confounds files beside every run; see
    :mod:`icanets.simulate._motion`):

    motion_fd : float
        Median over subjects of a subject's mean framewise displacement (mm) between spikes;
        every motion spike of the BOLD is also a 0.5-2 mm jump of the parameters.
    motion_group_ratio : float
        Patients move this many times as much as controls (1: no group difference).
    motion_fc_bias : float
        Size (units of ``noise_sd`` for a subject of median motion) of a smooth, shared BOLD
        signal that follows the movement, so FC rises with motion (0: none, the default).
    """

    name: str
    n_controls: int
    n_patients: int
    n_tp2: int
    n_tp3: int
    n_retest: int
    p_two_runs: float
    n_volumes: int
    tr: float
    resolution: float
    n_nodes: int
    n_bilateral: int
    n_artifacts: int
    blob_fwhm: float
    node_amplitude: float = 30.0
    artifact_amplitude: float = 12.0
    noise_sd: float = 20.0
    baseline: float = 1000.0
    misalign: float = 1.5
    band: tuple[float, float] = (0.01, 0.25)
    background_range: tuple[float, float] = (0.12, 0.25)
    subject_sd: float = 0.03
    session_sd: float = 0.02
    effect_group: float = 0.3
    effect_treatment: float = 0.3
    effect_interaction: float = 0.2
    planted_base: float = 0.15
    session_shift: float = 0.0
    shape_sd: float = 0.0
    size_spread: float = 0.0
    max_extra_lobes: int = 0
    amplitude_spread: float = 0.0
    subject_amplitude_sd: float = 0.0
    node_amplitude_sd: float = 0.0
    motion_spikes: float = 0.0
    spike_amplitude: float = 0.0
    drift_amplitude: float = 0.0
    cardiac_amplitude: float = 0.0
    respiration_amplitude: float = 0.0
    volumes_spread: float = 0.0
    noise_fwhm: float = 0.0
    noise_ar: float = 0.0
    motion_fd: float = 0.12
    motion_group_ratio: float = 1.0
    motion_fc_bias: float = 0.0

    def __post_init__(self):
        if not 0 <= self.n_tp2 <= self.n_patients or not 0 <= self.n_tp3 <= self.n_patients:
            raise ConfigError(f"preset {self.name}: n_tp2 and n_tp3 must lie in 0..n_patients ({self.n_patients})")
        if not 0 <= self.n_retest <= self.n_controls:
            raise ConfigError(f"preset {self.name}: n_retest must lie in 0..n_controls ({self.n_controls})")
        if self.n_nodes < 6:
            raise ConfigError(f"preset {self.name}: n_nodes must be at least 6 (three planted edges), got {self.n_nodes}")
        if not 0 <= self.n_bilateral <= self.n_nodes:
            raise ConfigError(f"preset {self.name}: n_bilateral must lie in 0..n_nodes")
        if self.n_patients < 4 or self.n_controls < 2:
            raise ConfigError(f"preset {self.name}: needs at least 2 controls and 4 patients")

    def with_changes(self, **changes) -> Preset:
        """A copy with some parameters changed (unknown names raise ConfigError)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown preset parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **changes)

    def with_realism(self, level: str = "realistic", **factors: str) -> Preset:
        """A copy with every realism factor at ``level``, except those named in ``factors``.

        Examples
        --------
        >>> p = get_preset("demo").with_realism("realistic", spikes="harsh", drift="off")
        >>> p.motion_spikes > get_preset("demo").motion_spikes, p.drift_amplitude
        (True, 0.0)
        """
        unknown = sorted(set(factors) - set(REALISM_FACTORS))
        if unknown:
            raise ConfigError(f"unknown realism factor(s) {', '.join(unknown)}; known: {', '.join(REALISM_FACTORS)}")
        changes: dict = {}
        for factor, levels in REALISM_FACTORS.items():
            chosen = factors.get(factor, level)
            if chosen not in REALISM_LEVELS:
                raise ConfigError(f"realism level of {factor!r} must be one of {', '.join(REALISM_LEVELS)}, "
                                  f"got {chosen!r}")
            changes.update(levels(self)[chosen])
        return replace(self, **changes)

    def realism(self) -> dict[str, str]:
        """Which level every realism factor is at (``custom`` where it matches none)."""
        out = {}
        for factor, levels in REALISM_FACTORS.items():
            table = levels(self)
            out[factor] = next((level for level in REALISM_LEVELS
                                if all(getattr(self, k) == v for k, v in table[level].items())), "custom")
        return out


#: Levels of every realism factor, in order of severity.
REALISM_LEVELS = ("off", "realistic", "harsh")


def _misregistration(p: Preset) -> dict:
    # Residual misregistration after normalisation is ~2-3 mm for nodes 10-20 mm wide: about a fifth of a
    # node's FWHM. Harsh: a whole voxel per session (or half a node), as in the independent cohort.
    return {"off": dict(session_shift=0.0, misalign=0.0, shape_sd=0.0),
            "realistic": dict(session_shift=round(0.2 * p.blob_fwhm, 2), misalign=round(0.1 * p.blob_fwhm, 2),
                              shape_sd=0.1),
            "harsh": dict(session_shift=max(p.resolution, round(0.5 * p.blob_fwhm, 2)),
                          misalign=round(0.2 * p.blob_fwhm, 2), shape_sd=0.25)}


#: Realism factor -> function of the preset giving ``{level: {knob: value}}``.
REALISM_FACTORS = {
    "misregistration": _misregistration,
    "node_shapes": lambda p: {"off": dict(size_spread=0.0, max_extra_lobes=0),
                              "realistic": dict(size_spread=0.3, max_extra_lobes=2),
                              "harsh": dict(size_spread=0.5, max_extra_lobes=3)},
    "amplitude": lambda p: {"off": dict(amplitude_spread=0.0, subject_amplitude_sd=0.0, node_amplitude_sd=0.0),
                            "realistic": dict(amplitude_spread=0.4, subject_amplitude_sd=0.2, node_amplitude_sd=0.15),
                            "harsh": dict(amplitude_spread=0.8, subject_amplitude_sd=0.35, node_amplitude_sd=0.3)},
    "spikes": lambda p: {"off": dict(motion_spikes=0.0, spike_amplitude=0.0),
                         "realistic": dict(motion_spikes=1.0, spike_amplitude=3.0),
                         "harsh": dict(motion_spikes=4.0, spike_amplitude=6.0)},
    "drift": lambda p: {"off": dict(drift_amplitude=0.0),
                        "realistic": dict(drift_amplitude=0.5),
                        "harsh": dict(drift_amplitude=2.0)},
    "physio": lambda p: {"off": dict(cardiac_amplitude=0.0, respiration_amplitude=0.0),
                         "realistic": dict(cardiac_amplitude=0.6, respiration_amplitude=0.3),
                         "harsh": dict(cardiac_amplitude=1.5, respiration_amplitude=0.8)},
    "run_lengths": lambda p: {"off": dict(volumes_spread=0.0),
                              "realistic": dict(volumes_spread=0.25),
                              "harsh": dict(volumes_spread=0.6)},
    # Real noise is about a third to half as wide as a node (6-8 mm FWHM for nodes of 15-20 mm); harsh: 3/4.
    "noise": lambda p: {"off": dict(noise_fwhm=0.0, noise_ar=0.0),
                        "realistic": dict(noise_fwhm=round(0.45 * p.blob_fwhm / p.resolution, 3), noise_ar=0.3),
                        "harsh": dict(noise_fwhm=round(0.75 * p.blob_fwhm / p.resolution, 3), noise_ar=0.5)},
}


_BASE = {
    "tiny": Preset(
        name="tiny", n_controls=6, n_patients=8, n_tp2=6, n_tp3=7, n_retest=3, p_two_runs=0.3,
        n_volumes=60, tr=0.8, resolution=12.0, n_nodes=6, n_bilateral=2, n_artifacts=4, blob_fwhm=20.0,
    ),
    "demo": Preset(
        name="demo", n_controls=20, n_patients=30, n_tp2=24, n_tp3=25, n_retest=6, p_two_runs=0.25,
        n_volumes=200, tr=0.8, resolution=8.0, n_nodes=20, n_bilateral=5, n_artifacts=6, blob_fwhm=16.0,
    ),
    "paper": Preset(
        name="paper", n_controls=40, n_patients=61, n_tp2=48, n_tp3=51, n_retest=10, p_two_runs=1.0,
        n_volumes=500, tr=0.8, resolution=6.0, n_nodes=100, n_bilateral=20, n_artifacts=20, blob_fwhm=12.0,
    ),
}

#: The presets: ``demo`` and ``paper`` with every realism factor at its realistic level; ``tiny`` (a
#: test-sized study: 12 mm voxels, 60 volumes per run) with realistic misregistration, motion spikes
#: and unequal run lengths only, since so little data cannot carry the rest (weak nodes vanish).
PRESETS: dict[str, Preset] = {
    "tiny": _BASE["tiny"].with_realism("off", misregistration="realistic", spikes="realistic",
                                       run_lengths="realistic"),
    "demo": _BASE["demo"].with_realism("realistic"),
    "paper": _BASE["paper"].with_realism("realistic"),
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``tiny``, ``demo`` or ``paper``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
