"""What one training step is, per GAN family."""

from ganforge.tasks.unconditional import UnconditionalTask

__all__ = ["UnconditionalTask"]
