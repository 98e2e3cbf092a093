"""Using a trained model: the translate CLI, the `pipeline()` task, attention alignments and plots."""
