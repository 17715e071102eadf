"""Presets of the synthetic study: cohort size, image grid, nodes, effects."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from icanets.errors import ConfigError

__all__ = ["Preset", "PRESETS", "get_preset"]


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


PRESETS: dict[str, Preset] = {
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


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (``tiny``, ``demo`` or ``paper``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
