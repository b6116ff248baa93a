"""TrainingJob: plan (pure), build (Job, ModelVersion), handlers (kopf)."""
