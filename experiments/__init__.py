"""Command-line experiments: data collection, training, planning evaluations, plots and the demo."""
