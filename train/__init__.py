"""recon training: losses, datasets and their preparation, the training loop."""
