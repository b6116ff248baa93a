"""The Kubernetes API: the client, the one apply/error policy, names, status writes, the
work queue and watch state."""
