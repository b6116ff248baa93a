"""The local cluster for development and tests: API emulator, workload runner, S3, Prometheus
and the demo. Never shipped in an image."""
