"""The models: each folder holds exactly the files that travel to the Hub with a saved model."""
