"""Trainer loop, devices, checkpoints."""
