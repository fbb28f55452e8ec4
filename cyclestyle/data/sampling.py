"""Which A and B images make up each training item, per epoch and per rank.

The larger domain defines the epoch: it is shuffled and split into disjoint, equally long
shards, one per DDP rank (the last few items are repeated so every rank runs the same
number of iterations). The other domain is drawn at random for each item. Every item also
carries its own augmentation seed. All three depend only on (seed, epoch, position), so a
run is reproducible whatever the number of DataLoader workers, and a resumed run sees the
same data as an uninterrupted one.
"""
from __future__ import annotations

import math
from typing import Iterator

import numpy as np
from torch.utils.data import Sampler

Item = tuple[int, int, int]  # (index into A, index into B, augmentation seed)


class UnpairedSampler(Sampler[Item]):
    def __init__(self, n_a: int, n_b: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if min(n_a, n_b) < 1:
            raise ValueError("both domains need at least one image")
        self.n_a, self.n_b, self.seed = n_a, n_b, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.resume_at: tuple[int, int] | None = None  # (epoch, items already consumed) after a resume

    def __len__(self) -> int:
        return math.ceil(max(self.n_a, self.n_b) / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def items(self, epoch: int) -> list[Item]:
        """This rank's items for `epoch`."""
        a_leads = self.n_a >= self.n_b
        n_lead, n_other = (self.n_a, self.n_b) if a_leads else (self.n_b, self.n_a)
        total = len(self) * self.world_size
        lead = np.random.default_rng([self.seed, epoch, 0]).permutation(n_lead)
        lead = np.resize(lead, total)[self.rank :: self.world_size]  # pad by repeating the start
        other = np.random.default_rng([self.seed, epoch, 1, self.rank]).integers(0, n_other, len(lead))
        seeds = np.random.default_rng([self.seed, epoch, 2]).integers(0, 2**31 - 1, total)[self.rank :: self.world_size]
        a, b = (lead, other) if a_leads else (other, lead)
        return list(zip(a.tolist(), b.tolist(), seeds.tolist()))

    def __iter__(self) -> Iterator[Item]:
        items = self.items(self.epoch)
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            items = items[self.resume_at[1] :]
        self.resume_at = None
        return iter(items)
