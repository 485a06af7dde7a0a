"""What a run reads: the task registry and readers, pretrained models and tokenisers, preparation, download, data
fingerprints and the tasks' metrics."""
