"""A short demo until the main job lands: train a tiny model to reverse sequences, beam-search, save, reload."""
