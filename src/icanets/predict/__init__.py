"""Predicting clinical outcomes from the connectome, cross-validated without leakage.

A prediction is declared in the study config (``[predict.<name>]``): a target (a continuous
clinical change such as ``hdrs_change_pct``, or a binary outcome such as ``remitter``), the
session whose edges predict it (or the change between two sessions), a model (ridge / L2
logistic with its penalty tuned inside each training fold, or connectome-based predictive
modelling) and confounds. Every step (confound regression, edge selection, scaling, tuning)
is a scikit-learn estimator inside one ``Pipeline``, fitted on each training fold only.
Validation is repeated stratified k-fold (or leave-one-out); the p-value comes from running
the whole cross-validated procedure on permuted targets; intervals from a bootstrap of the
out-of-fold predictions; CPM's consensus edges are those selected in at least 90 % of fits.

Example
-------
.. code-block:: toml

    [predict.remission_tp1]
    description = "remission from the baseline connectome"
    subset = "group == 'MDD'"
    session = "TP1"
    target = "remitter"
    model = "cpm"
    confounds = ["age", "sex"]
"""

from icanets.predict._models import MODELS, ConfoundRegressor, CPMClassifier, CPMRegressor, make_pipeline
from icanets.predict._study import PredictionResult, PreparedPrediction, prepare_prediction, run_prediction
from icanets.predict._validation import (METRICS, PRIMARY, CrossValidation, CVSettings, PredictError,
                                         bootstrap_intervals, cross_validate, cv_splits, metrics,
                                         permutation_null, permutation_p)

__all__ = ["MODELS", "METRICS", "PRIMARY", "ConfoundRegressor", "CPMClassifier", "CPMRegressor", "make_pipeline",
           "CVSettings", "CrossValidation", "PredictError", "cv_splits", "cross_validate", "metrics",
           "permutation_null", "permutation_p", "bootstrap_intervals", "PreparedPrediction", "PredictionResult",
           "prepare_prediction", "run_prediction"]
