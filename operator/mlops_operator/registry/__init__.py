"""ModelVersion: digest verification, gates, degradation, servedBy."""
