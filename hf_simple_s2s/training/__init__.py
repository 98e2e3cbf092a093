"""The main job (`simple-s2s-train`): arguments and presets, callbacks, crash-safe checkpoints, evaluation."""
