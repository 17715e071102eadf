"""Stages that read inputs, call the numerical kernels and write one output folder each.

Each stage writes into a temporary folder renamed into place when complete, with a JSON
sidecar holding its settings, software versions, input checksums and seed.
"""

from icanets.pipeline._analyses import analyses_stage, findings_text
from icanets.pipeline._common import file_checksum, provenance
from icanets.pipeline._glm import glm_stage, row_keys
from icanets.pipeline._ica import ICASettings, ica_stage, spatial_regressors
from icanets.pipeline._netmats import NetmatsSettings, netmats_stage

__all__ = ["NetmatsSettings", "netmats_stage", "glm_stage", "ICASettings", "ica_stage", "analyses_stage",
           "findings_text", "provenance", "file_checksum", "row_keys", "spatial_regressors"]
