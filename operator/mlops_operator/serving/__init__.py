"""InferenceService: plan (resolve, promote, roll back, roll out), build, handlers."""
