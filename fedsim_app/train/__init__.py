"""GLO training of the model for one site: configuration, latents, data, steps, the
three phases and checkpoints."""
