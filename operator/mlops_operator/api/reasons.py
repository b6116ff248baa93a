"""Condition types and reasons: CamelCase constants, one place for all resources."""

from typing import Final

# Condition types
READY: Final = "Ready"
STORAGE_REACHABLE: Final = "StorageReachable"
ARTIFACT_VERIFIED: Final = "ArtifactVerified"
GATES_PASSED: Final = "GatesPassed"
DEGRADED: Final = "Degraded"
PROGRESSING: Final = "Progressing"
ROLLED_BACK: Final = "RolledBack"
RETRAINING: Final = "Retraining"
REGISTERED: Final = "Registered"

# Reasons shared by every resource
INVALID_SPEC: Final = "InvalidSpec"

# TrainingJob
STORAGE_OK: Final = "StorageOK"
STORAGE_UNREACHABLE: Final = "StorageUnreachable"
DATASET_NOT_FOUND: Final = "DatasetNotFound"
BUCKET_NOT_FOUND: Final = "BucketNotFound"
ACCESS_DENIED: Final = "AccessDenied"
CREDENTIALS_MISSING: Final = "CredentialsMissing"
JOB_CREATED: Final = "JobCreated"
JOB_PENDING: Final = "JobPending"
JOB_RUNNING: Final = "JobRunning"
TRAINING_FAILED: Final = "TrainingFailed"
BACKOFF_LIMIT_EXCEEDED: Final = "BackoffLimitExceeded"
DEADLINE_EXCEEDED: Final = "DeadlineExceeded"
JOB_DELETED: Final = "JobDeleted"
SPEC_CHANGED: Final = "SpecChanged"
REGISTERING: Final = "Registering"
MODEL_REGISTERED: Final = "ModelRegistered"
REGISTRATION_FAILED: Final = "RegistrationFailed"

# ModelVersion
VERIFYING: Final = "Verifying"
DIGEST_MATCH: Final = "DigestMatch"
DIGEST_MISMATCH: Final = "DigestMismatch"
ARTIFACT_NOT_FOUND: Final = "ArtifactNotFound"
ALL_GATES_PASSED: Final = "AllGatesPassed"
NO_GATES: Final = "NoGates"
GATE_FAILED: Final = "GateFailed"
VERSION_READY: Final = "VersionReady"
DEGRADATION_CLEARED: Final = "DegradationCleared"

# InferenceService
NO_SERVABLE_VERSION: Final = "NoServableVersion"
RESOLVED: Final = "VersionResolved"
ROLLING_OUT: Final = "RollingOut"
ROLLED_OUT: Final = "RolledOut"
PREDICTOR_READY: Final = "PredictorReady"
PREDICTOR_NOT_READY: Final = "PredictorNotReady"
SCALED_TO_ZERO: Final = "ScaledToZero"
AUTOSCALING_ENABLED: Final = "AutoscalingEnabled"
AUTOSCALING_DISABLED: Final = "AutoscalingDisabled"
GATES_NOT_PASSED: Final = "GatesNotPassed"

# Monitoring and remediation
METRICS_HEALTHY: Final = "MetricsHealthy"
METRICS_BREACHED: Final = "MetricsBreached"
NOT_EVALUATED: Final = "NotEvaluated"
VERSION_ROLLED_BACK: Final = "RolledBack"
NO_HEALTHY_VERSION: Final = "NoHealthyVersion"
PINNED_VERSION: Final = "PinnedVersion"
ALERT_ONLY: Final = "AlertOnly"
RETRAINING_STARTED: Final = "RetrainingStarted"
RETRAINING_REFUSED: Final = "RetrainingRefused"
NO_TRAINING_SPEC: Final = "NoTrainingSpec"
PROMOTED: Final = "Promoted"
NOT_PROMOTED: Final = "NotPromoted"
RETRAINING_FAILED: Final = "RetrainingFailed"
