"""The true network: partial correlations per subject and session, and node time courses.

Node time courses of one run are drawn as ``x_t ~ N(0, Sigma)`` i.i.d. over time with
``Sigma = inv(I - R)``, where ``R`` (zero diagonal) holds the partial correlations of the
subject in that session: the precision matrix ``I - R`` has a unit diagonal, so its
partial correlations ``-P_ij / sqrt(P_ii P_jj)`` are exactly ``R_ij``. Every node is then
band-pass filtered with the same zero-phase filter, which scales the covariance at lag
0 by one constant and so leaves the partial correlations unchanged, while making the
series temporally autocorrelated and band-limited like BOLD.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal

from icanets.simulate._presets import Preset

__all__ = ["PlantedEdge", "Network", "make_network", "condition_partial", "subject_partial", "node_timecourses",
           "interaction_score"]

_MIN_EIGENVALUE = 0.2


@dataclass(frozen=True)
class PlantedEdge:
    """An edge with a planted effect.

    Attributes
    ----------
    effect : str
        ``"group"`` (controls > patients at every session), ``"treatment"`` (patients
        decrease from session 1 to 3; controls equal patients at session 1) or
        ``"interaction"`` (patients: ``base + d*z`` at session 1, ``base`` at 2,
        ``base - d*z`` at 3, with ``z`` the interaction score of their improvement, so
        remitters start high and fall and non-remitters start low and rise).
    node_i, node_j : int
        0-based node indices, ``node_i < node_j``.
    """

    effect: str
    node_i: int
    node_j: int


@dataclass(frozen=True)
class Network:
    """The study's true network.

    Attributes
    ----------
    background : ndarray, shape (n_nodes, n_nodes)
        Partial correlations shared by everyone (zero diagonal, zero on planted edges).
    networks : ndarray of int, shape (n_nodes,)
        Which sub-network each node belongs to.
    planted : tuple of PlantedEdge
    """

    background: np.ndarray
    networks: np.ndarray
    planted: tuple[PlantedEdge, ...]


def interaction_score(improvement: float) -> float:
    """``z`` in [-1, 1] from the fractional HDRS improvement (0.5 maps to 0)."""
    if not np.isfinite(improvement):
        return 0.0
    return float(np.clip((improvement - 0.5) / 0.2, -1.0, 1.0))


def make_network(preset: Preset, rng: np.random.Generator) -> Network:
    k = preset.n_nodes
    n_networks = max(2, int(np.ceil(k / 5)))
    networks = rng.permutation(np.arange(k) % n_networks)
    background = np.zeros((k, k))
    lo, hi = preset.background_range

    def put(i, j, value):
        background[i, j] = background[j, i] = value

    for net in range(n_networks):
        members = rng.permutation(np.flatnonzero(networks == net))
        for a, b in zip(members[:-1], members[1:]):
            put(a, b, rng.uniform(lo, hi) * (-1 if rng.random() < 0.15 else 1))
        if len(members) >= 4:
            a, b = rng.choice(members, size=2, replace=False)
            if background[a, b] == 0:
                put(a, b, rng.uniform(lo, hi))
    for _ in range(max(1, k // 10)):
        a, b = rng.choice(k, size=2, replace=False)
        if networks[a] != networks[b] and background[a, b] == 0:
            put(a, b, -rng.uniform(0.05, 0.12))

    # Three disjoint node pairs for the planted effects, preferring pairs across sub-networks.
    nodes = rng.permutation(k)
    pairs: list[tuple[int, int]] = []
    used: set[int] = set()
    for a in nodes:
        if a in used:
            continue
        for b in nodes:
            if b != a and b not in used and networks[a] != networks[b]:
                pairs.append((int(min(a, b)), int(max(a, b))))
                used.update((a, b))
                break
        if len(pairs) == 3:
            break
    if len(pairs) < 3:  # too few sub-networks: any disjoint pairs
        free = [int(n) for n in nodes if n not in used]
        while len(pairs) < 3:
            a, b = free.pop(), free.pop()
            pairs.append((min(a, b), max(a, b)))
    planted = tuple(PlantedEdge(effect, i, j) for effect, (i, j) in zip(("group", "treatment", "interaction"), pairs))
    for edge in planted:
        put(edge.node_i, edge.node_j, 0.0)

    network = Network(background=background, networks=networks, planted=planted)
    for _ in range(50):  # shrink the background until every condition is comfortably positive definite
        worst = min(
            np.linalg.eigvalsh(np.eye(k) - condition_partial(network, preset, group, session, z)).min()
            for group, session, z in [("HC", "ses-1", 0.0), ("MDD", "ses-1", 1.0), ("MDD", "ses-1", -1.0),
                                      ("MDD", "ses-3", 1.0), ("MDD", "ses-3", -1.0)]
        )
        if worst >= _MIN_EIGENVALUE:
            return network
        network = Network(background=background * 0.9, networks=networks, planted=planted)
        background = network.background
    raise RuntimeError("could not build a positive definite network; lower the effects or background_range")


def condition_partial(network: Network, preset: Preset, group: str, session: str, z: float = 0.0) -> np.ndarray:
    """Group-level true partial correlations for a group, session and interaction score."""
    partial = network.background.copy()
    base = preset.planted_base
    step = {"ses-1": 0, "ses-2": 1, "ses-3": 2}.get(session, 0)
    for edge in network.planted:
        if edge.effect == "group":
            value = base + preset.effect_group if group == "HC" else base
        elif edge.effect == "treatment":
            value = base + preset.effect_treatment * (1.0 if group == "HC" else 1.0 - step / 2)
        else:
            value = base + (preset.effect_interaction * z * (1 - step) if group != "HC" else 0.0)
        partial[edge.node_i, edge.node_j] = partial[edge.node_j, edge.node_i] = value
    return partial


def subject_partial(condition: np.ndarray, background: np.ndarray, deviation: np.ndarray) -> np.ndarray:
    """A subject's partial correlations: the condition plus deviations on background edges.

    ``deviation`` is a symmetric matrix; it is applied only where ``background`` is
    non-zero, so planted edges keep their condition value.
    """
    partial = condition + np.where(background != 0, deviation, 0.0)
    if np.linalg.eigvalsh(np.eye(len(partial)) - partial).min() <= 0.05:
        partial = condition  # keep the subject's matrix a valid precision matrix
    return partial


def symmetric_noise(k: int, sd: float, rng: np.random.Generator) -> np.ndarray:
    upper = np.triu(rng.normal(0.0, sd, (k, k)), 1)
    return upper + upper.T


@lru_cache(maxsize=16)
def _band_filter(tr: float, low: float, high: float) -> tuple[np.ndarray, float]:
    nyquist = 0.5 / tr
    high = min(high, 0.9 * nyquist)
    sos = signal.butter(2, [low, high], btype="bandpass", fs=1.0 / tr, output="sos")
    impulse = np.zeros(4001)
    impulse[2000] = 1.0
    response = signal.sosfiltfilt(sos, impulse)
    return sos, float(np.sqrt(np.sum(response**2)))


def node_timecourses(partial: np.ndarray, n_volumes: int, tr: float, band: tuple[float, float],
                     rng: np.random.Generator) -> np.ndarray:
    """Band-limited node time courses with the given partial correlations, shape ``(T, K)``.

    Each node has unit variance in expectation up to the diagonal of ``inv(I - R)``.
    """
    k = len(partial)
    covariance = np.linalg.inv(np.eye(k) - partial)
    chol = np.linalg.cholesky((covariance + covariance.T) / 2)
    pad = max(64, int(round(2.0 / (band[0] * tr))) // 4)
    white = rng.standard_normal((n_volumes + 2 * pad, k)) @ chol.T
    sos, gain = _band_filter(float(tr), float(band[0]), float(band[1]))
    filtered = signal.sosfiltfilt(sos, white, axis=0) / gain
    return filtered[pad:pad + n_volumes]
