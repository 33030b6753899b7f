"""Applications built on trained runs: latent tools, export, model cards."""
