"""The synthetic cohort: who, when, how many runs, age, sex and HDRS."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from icanets.simulate._presets import Preset

__all__ = ["Cohort", "make_cohort", "REMISSION_THRESHOLD"]

#: HDRS at the last session at or below which a patient is a remitter.
REMISSION_THRESHOLD = 7


@dataclass(frozen=True)
class Cohort:
    """The subjects and sessions of a synthetic study.

    Attributes
    ----------
    participants : DataFrame
        ``participant_id``, ``group`` (``HC``/``MDD``), ``age``, ``sex`` (``F``/``M``).
    sessions : DataFrame
        ``participant_id``, ``session_id``, ``hdrs`` (NaN for controls), ``n_runs``.
    improvement : Series
        Latent fractional HDRS improvement from the first to the last session per patient
        (defined also for patients not scanned at the last session), NaN for controls.
    """

    participants: pd.DataFrame
    sessions: pd.DataFrame
    improvement: pd.Series


def make_cohort(preset: Preset, rng: np.random.Generator) -> Cohort:
    n_hc, n_mdd = preset.n_controls, preset.n_patients
    ids = [f"sub-{i + 1:03d}" for i in range(n_hc + n_mdd)]
    group = np.array(["HC"] * n_hc + ["MDD"] * n_mdd, dtype=object)
    # Reference study: HC 32.9 (12.7) years, 60 % female; MDD 39.0 (10.7), 47.5 % female; all 20-64.
    age = np.concatenate([rng.normal(32.9, 12.7, n_hc), rng.normal(39.0, 10.7, n_mdd)])
    age = np.clip(np.round(age), 20, 64)
    sex = np.concatenate([_sexes(n_hc, 0.60, rng), _sexes(n_mdd, 0.475, rng)])
    participants = pd.DataFrame({"participant_id": ids, "group": group, "age": age, "sex": sex})

    mdd_ids = ids[n_hc:]
    with_tp2 = set(rng.choice(mdd_ids, size=preset.n_tp2, replace=False))
    with_tp3 = set(rng.choice(mdd_ids, size=preset.n_tp3, replace=False))
    retest = set(rng.choice(ids[:n_hc], size=preset.n_retest, replace=False))

    rows = []
    improvement = {}
    for sid in ids[:n_hc]:
        improvement[sid] = np.nan
        for ses in ["ses-1"] + (["ses-2"] if sid in retest else []):
            rows.append((sid, ses, np.nan))
    for sid in mdd_ids:
        hdrs1 = float(np.clip(np.round(rng.normal(20.0, 3.5)), 17, 34))
        remits = rng.random() < 0.47
        if remits:
            hdrs3 = float(rng.integers(1, REMISSION_THRESHOLD + 1))
        else:
            hdrs3 = float(rng.integers(REMISSION_THRESHOLD + 1, max(REMISSION_THRESHOLD + 3, int(hdrs1) - 1)))
        hdrs2 = float(np.clip(np.round(hdrs1 - 0.6 * (hdrs1 - hdrs3) + rng.normal(0, 2.0)), 0, 52))
        improvement[sid] = (hdrs1 - hdrs3) / hdrs1
        rows.append((sid, "ses-1", hdrs1))
        if sid in with_tp2:
            rows.append((sid, "ses-2", hdrs2))
        if sid in with_tp3:
            rows.append((sid, "ses-3", hdrs3))
    sessions = pd.DataFrame(rows, columns=["participant_id", "session_id", "hdrs"])
    sessions["n_runs"] = np.where(rng.random(len(sessions)) < preset.p_two_runs, 2, 1)
    return Cohort(participants=participants, sessions=sessions, improvement=pd.Series(improvement, name="improvement"))


def _sexes(n: int, female: float, rng: np.random.Generator) -> np.ndarray:
    n_f = int(round(n * female))
    return rng.permutation(np.array(["F"] * n_f + ["M"] * (n - n_f), dtype=object))
