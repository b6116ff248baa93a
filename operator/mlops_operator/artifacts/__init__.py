"""The artifact layout (the trainer, operator and server contract) and the S3/local store."""
