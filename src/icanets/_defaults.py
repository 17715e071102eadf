"""Defaults and choices shared by the API, the command line and the study config (one value each)."""

#: Tails of t contrasts: 1 tests each contrast in its own direction, as FSL randomise does.
DEFAULT_TAILS = 1

#: Model-order methods of the group ICA stage (see icanets.ica.order); the first is the default.
ORDER_METHODS = ("reproducibility", "consistency", "laplace", "bic", "mdl", "aic")

#: Fewest volumes a BOLD run may have ([bold] min_volumes).
DEFAULT_MIN_VOLUMES = 40

#: Fewest time points of a run's node time series for a netmat ([netmats] min_timepoints).
MIN_TIMEPOINTS = 20

#: Cross-validated prediction ([predict.<name>], icanets.predict): folds and repeats of the
#: repeated stratified k-fold, CPM's edge-selection p, permutations of the whole procedure,
#: bootstrap resamples, and the fraction of fits that makes an edge a consensus edge.
PREDICT_DEFAULTS = {"folds": 5, "repeats": 5, "threshold": 0.01, "n_perm": 1000, "n_boot": 1000, "consensus": 0.9}

#: Head motion ([motion], icanets.qc): where motion files come from, FD's head radius (mm, Power
#: 2012 and fMRIPrep), the FD (mm) above which a volume is high-motion (Power 2012, fMRIPrep's
#: default), the largest disagreement (mm) tolerated between a file's FD column and the FD
#: computed from its parameters, and the covariates partialled out of QC-FC.
MOTION_DEFAULTS = {"source": "auto", "head_radius": 50.0, "fd_threshold": 0.5, "fd_tolerance": 0.01,
                   "qcfc_covariates": ("age", "sex")}

#: Node anatomy ([anatomy], icanets.io.atlas): |z| above which a map's voxels count for its
#: hemisphere and atlas labels, and whether nilearn's already-downloaded atlases are used.
ANATOMY_DEFAULTS = {"z_threshold": 2.5, "nilearn": True}

#: Dataset layouts ([study] layout): BIDS (the default) or HCP pipeline outputs.
LAYOUTS = ("bids", "hcp")

#: HCP pipeline outputs ([hcp], layout = "hcp"): the subject folder's name (regular expression
#: with a named group ``sub`` and optionally ``ses``), the folder holding the runs, the run
#: folder's name (named groups among ``task``, ``run``, ``dir``, ``acq``, ``ses``), and the run's
#: image inside it (``{run}`` is the run folder's name; a glob, which must match one file).
HCP_DEFAULTS = {"subject": r"(?P<sub>[A-Za-z0-9]+)", "results": "MNINonLinear/Results",
                "run": r"rfMRI_(?P<task>[A-Za-z]+)(?P<run>[0-9]*)_(?P<dir>[A-Z]{2})",
                "file": "{run}_Atlas*.dtseries.nii"}
