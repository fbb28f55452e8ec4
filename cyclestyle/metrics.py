"""FID and KID of translations (torchmetrics) and the InceptionV3 features they use.

The Inception weights are torch-fidelity's (`weights-inception-2015-12-05-6726825d.pth`), kept in
torch's hub cache. Online, the first run downloads them; offline, when they are not cached, the
run warns once (naming the file and where to put it) and trains on without FID/KID.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from .pixels import to_unit

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
DIRECTIONS = ("A2B", "B2A")
_warned: set[str] = set()


def inception_weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


def inception_features(download: bool = True) -> nn.Module | None:
    """torchmetrics' InceptionV3 (2048-d pool features) from the hub cache, downloading it if
    allowed and possible; None (with one warning per process) when the weights cannot be had."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    path = inception_weights_path()
    if not path.exists() and download:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(INCEPTION_URL, str(path), progress=False)
        except Exception as error:  # noqa: BLE001 -- offline, proxy, disk: all mean "no FID"
            path.unlink(missing_ok=True)
            _warn_once(f"FID/KID disabled: could not download the InceptionV3 weights ({type(error).__name__}). "
                       f"Put {INCEPTION_FILE} (from {INCEPTION_URL}) at {path} to enable them.")
            return None
    if not path.exists():
        _warn_once(f"FID/KID disabled: InceptionV3 weights not found at {path}; download {INCEPTION_URL} there "
                   f"to enable them.")
        return None
    return NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                              feature_extractor_weights_path=str(path))


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, stacklevel=3)


class TranslationMetrics:
    """FID and KID per direction between real images of the target domain and translations into it.

    Kept outside the LightningModule's module tree (so the feature network never lands in a
    checkpoint); torchmetrics reduces the statistics across DDP ranks when computing. Inputs are
    (B, 3, H, W) in [-1, 1]; at most `num_images` per domain and rank are used per validation."""

    def __init__(self, features: nn.Module, *, directions: tuple[str, ...] = DIRECTIONS, num_images: int = 50,
                 kid_subset_size: int = 50) -> None:
        self.directions, self.num_images, self.kid_subset_size = tuple(directions), num_images, kid_subset_size
        make = dict(feature=features, normalize=True)
        self.fid = {d: FrechetInceptionDistance(reset_real_features=False, **make) for d in self.directions}
        self.kid = {d: KernelInceptionDistance(reset_real_features=False, subset_size=kid_subset_size, **make)
                    for d in self.directions}
        self.real_done = False  # real statistics are computed at the first validation only
        self.seen = dict.fromkeys(self.directions, 0)

    def to(self, device: torch.device) -> TranslationMetrics:
        for metric in (*self.fid.values(), *self.kid.values()):
            metric.to(device)
        return self

    def update(self, direction: str, real_target: torch.Tensor, fake: torch.Tensor) -> None:
        room = self.num_images - self.seen[direction]
        if room <= 0:
            return
        real, fake = to_unit(real_target[:room]), to_unit(fake[:room])
        for metric in (self.fid[direction], self.kid[direction]):
            if not self.real_done:
                metric.update(real, real=True)
            metric.update(fake, real=False)
        self.seen[direction] += len(fake)

    def compute(self) -> dict[str, torch.Tensor]:
        """{"FID_A2B", "KID_A2B", ..., "FID": mean FID}; resets the fakes for the next validation."""
        values = {}
        for d in self.directions:
            values[f"FID_{d}"] = self.fid[d].compute()
            kid = self.kid[d]
            kid.subset_size = min(self.kid_subset_size, self.seen[d] * _world_size())
            values[f"KID_{d}"] = kid.compute()[0]  # (mean, std) over subsets
            self.fid[d].reset(), kid.reset()  # keeps the real statistics (reset_real_features=False)
        values["FID"] = sum(values[f"FID_{d}"] for d in self.directions) / len(self.directions)
        self.real_done, self.seen = True, dict.fromkeys(self.directions, 0)
        return values


def _world_size() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))
