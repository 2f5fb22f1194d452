"""Seeding that returns the seed it used, so every run records it."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int | None = None) -> int:
    """Seed Python, NumPy and PyTorch. With no seed, draw one (and return it so it can be recorded)."""
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return seed
