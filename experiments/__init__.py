"""Experiments: command line, comparisons, sweeps, sensitivity, calibration, reports."""
