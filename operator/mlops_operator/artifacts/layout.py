"""The artifact layout: where runs and registered versions live, and the files in them.
The contract between the trainer, the operator and the model server. Pure."""
