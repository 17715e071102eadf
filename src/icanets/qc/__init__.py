"""Data quality: head motion per run (framewise displacement, DVARS), exclusion of runs by
motion, censoring masks, and QC-FC (how much functional connectivity follows motion)."""

from icanets.qc.motion import (MotionSettings, RunMotion, censor_mask, dvars, exclusion_reason,
                               framewise_displacement, motion_settings, run_motion, session_motion)
from icanets.qc.qcfc import QCFCResult, qc_fc

__all__ = ["MotionSettings", "RunMotion", "censor_mask", "dvars", "exclusion_reason", "framewise_displacement",
           "motion_settings", "run_motion", "session_motion", "QCFCResult", "qc_fc"]
