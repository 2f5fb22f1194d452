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


def derived_seed(*parts: int) -> int:
    """A 63-bit seed from the run's seed and where we are (epoch, sample, rank …): NumPy's SeedSequence mixes
    them, so nearby parts (sample 7 and 8, rank 0 and 1) give unrelated streams."""
    hi, lo = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint32)
    return (int(hi) << 31) ^ int(lo)
