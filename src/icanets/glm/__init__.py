"""Edge-wise general linear models with permutation inference (randomise/PALM style)."""

from icanets.glm.design import (
    CollinearityWarning,
    Design,
    DesignError,
    design_from_formula,
    design_from_fsl,
    parse_contrast,
    read_vest,
    write_vest,
)
from icanets.glm.exchange import Exchangeability, Relabellings, plan_relabellings
from icanets.glm.paired import PairedDifference, paired_difference
from icanets.glm.inference import NBSComponent, NBSOptions, fdr_bh, fwe_from_max
from icanets.glm.permutation import METHODS, ContrastResult, GLMResult, fit_statistics, permutation_glm

__all__ = [
    "CollinearityWarning", "Design", "DesignError", "design_from_formula", "design_from_fsl", "parse_contrast", "read_vest", "write_vest",
    "Exchangeability", "Relabellings", "plan_relabellings",
    "NBSComponent", "NBSOptions", "fdr_bh", "fwe_from_max",
    "METHODS", "ContrastResult", "GLMResult", "fit_statistics", "permutation_glm",
    "PairedDifference", "paired_difference",
]
