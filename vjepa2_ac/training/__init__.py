"""Training: encoder pretraining, AC-predictor training, probes."""
