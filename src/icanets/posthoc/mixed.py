"""Linear mixed model of one edge's FC: time x remission with a random intercept per subject."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from icanets.errors import IcanetsError

__all__ = ["time_by_remission"]


def time_by_remission(long: pd.DataFrame, remission: pd.Series, subjects: list[str], baseline: str,
                      followup: str) -> dict:
    """``fc ~ time * remission + (1 | subject)`` (statsmodels MixedLM, REML).

    ``time`` is 0 at ``baseline`` and 1 at ``followup``; ``remission`` 0/1. Every available
    observation of the ``subjects`` with a defined remission status is used (a subject seen
    at one session still informs the intercepts).

    Returns
    -------
    dict
        ``interaction`` (coefficient, SE, z, p), the other fixed effects, ``n_subjects``,
        ``n_observations``, ``converged`` and the subjects left out.
    """
    import statsmodels.formula.api as smf

    frame = long[long["participant_id"].isin(subjects) & long["session_id"].isin([baseline, followup])].copy()
    frame["time"] = (frame["session_id"] == followup).astype(float)
    frame["remission"] = remission.reindex(frame["participant_id"]).to_numpy(dtype=float)
    left_out = sorted(set(frame.loc[frame["remission"].isna(), "participant_id"]))
    frame = frame.dropna(subset=["remission", "fc"])
    if frame["participant_id"].nunique() < 4 or frame["remission"].nunique() < 2 or frame["time"].nunique() < 2:
        raise IcanetsError(f"the time x remission model needs both sessions and both remission groups; have "
                           f"{frame['participant_id'].nunique()} subjects, remission values "
                           f"{sorted(frame['remission'].unique())}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = smf.mixedlm("fc ~ time * remission", frame, groups=frame["participant_id"]).fit(reml=True)
    effects = {}
    for name in fit.fe_params.index:
        effects[name] = {"coef": float(fit.fe_params[name]), "se": float(fit.bse_fe[name]),
                         "z": float(fit.tvalues[name]), "p": float(fit.pvalues[name])}
    return {"formula": "fc ~ time * remission + (1 | subject)", "interaction": effects["time:remission"],
            "effects": effects, "n_subjects": int(frame["participant_id"].nunique()),
            "n_observations": int(len(frame)), "converged": bool(fit.converged),
            "warnings": sorted({str(w.message) for w in caught}), "left_out": left_out,
            "group_variance": float(np.asarray(fit.cov_re)[0, 0])}
