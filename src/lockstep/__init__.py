"""lockstep: the code both images share (model, data, checkpoints, stack manifest, doctor)."""

__version__ = "0.1.0"
