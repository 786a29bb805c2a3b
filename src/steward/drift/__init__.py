"""Drift detection: detectors with permutation-calibrated false-alarm rates, and the window monitor that
feeds them (used by the trainer's drift callback, `steward drift` and `steward bench drift`)."""
