"""Metric providers of the AnalysisRun controller: each takes one measurement of a metric (with its
args already substituted) and returns it in Argo's Measurement form, never raising for what the
provider or the remote system got wrong (that is the measurement's ``Error`` phase)."""
