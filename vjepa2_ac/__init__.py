"""vjepa2-ac: V-JEPA 2-AC, an action-conditioned latent world model for robot planning."""

__version__ = "0.1.0"
