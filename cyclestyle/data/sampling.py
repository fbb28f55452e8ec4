"""Which A and B images make up each training item, per epoch and per rank.

The larger domain defines the epoch: it is shuffled and split into disjoint, equally long
shards, one per DDP rank (the last few items are repeated so every rank runs the same
number of iterations). The other domain is drawn at random for each item. Every item also
carries its own augmentation seed. All three depend only on (seed, epoch, position), so a
run is reproducible whatever the number of DataLoader workers, and a resumed run sees the
same data as an uninterrupted one.

Where the next iteration starts — `epoch` and `start` (items of it to skip) — is plain state,
set before any iterator exists: (0, 0) in a new run, `resume(epoch, start)` from a checkpoint
(the datamodule's `load_state_dict`), `set_epoch(e)` between epochs. `iter()` reads it at once,
so the order cannot depend on when the first item is asked for: with DataLoader workers the
iterator prefetches as soon as it is created, and Lightning creates a resumed epoch's iterator
before it calls `set_epoch` (`FitLoop.setup_data` → `iter(data_fetcher)`, then
`FitLoop.on_advance_start` → `_set_sampler_epoch`). That late `set_epoch` names the epoch the
sampler already holds, so it changes nothing; only a different epoch moves it (and drops the skip),
as between epochs of a run, where Lightning calls `set_epoch(e)` before it creates epoch e's iterator.
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
        self.epoch = 0  # the epoch the next iterator yields ...
        self.start = 0  # ... from this item on (once: a resumed epoch's items already used)

    def __len__(self) -> int:
        return math.ceil(max(self.n_a, self.n_b) / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch (for a resumed epoch: after `iter`)."""
        if epoch != self.epoch:
            self.epoch, self.start = epoch, 0

    def resume(self, epoch: int, start: int) -> None:
        """Make the next iterator yield `epoch`'s items from `start` on."""
        if not 0 <= start <= len(self):
            raise ValueError(f"cannot resume at item {start} of epoch {epoch}: this rank's epoch has {len(self)} items "
                             f"(resume with the data and trainer.devices of the first run)")
        self.epoch, self.start = epoch, start

    @property
    def resume_at(self) -> tuple[int, int]:
        """(epoch, start) of the next iterator; setting it is `resume(epoch, start)`."""
        return self.epoch, self.start

    @resume_at.setter
    def resume_at(self, position: tuple[int, int] | None) -> None:
        if position is not None:
            self.resume(*position)

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
        items = self.items(self.epoch)[self.start :]  # read now, not at the first next()
        self.start = 0
        return iter(items)
