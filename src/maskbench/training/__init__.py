"""Training one run: settings, the train loop, checkpoints, batching, tracking, methods, masking."""
