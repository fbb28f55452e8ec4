"""Two unpaired image folders -> training and validation DataLoaders."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader

from .datasets import PairedByIndex, UnpairedImages, first_readable
from .images import find_images
from .sampling import UnpairedSampler
from .transforms import build_transform


class PositionedLoader(DataLoader):
    """The training DataLoader. Its position inside an epoch lives in the datamodule's checkpoint
    state (read by the sampler), so it has none of its own; these two methods only tell Lightning
    it is resumable, else every mid-epoch resume warns that results may be unreliable."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class TwoDomainDataModule(pl.LightningDataModule):
    """What every two-domain datamodule shares: checked loader settings, the training and
    validation augmentation pipelines, and `pin_memory=None` = pin batches when the trainer runs
    on a GPU (Lightning then copies them to the device without blocking)."""

    def __init__(self, *, a: str, b: str | None, val_a: str | None = None, val_b: str | None = None,
                 num_val: int = 8, preprocess: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                 flip: bool = True, batch_size: int = 1, num_workers: int = 2, pin_memory: bool | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.folders = {"a": a, "b": b, "val_a": val_a, "val_b": val_b}  # data.<key>: folders or streams
        if batch_size < 1:
            raise ValueError(f"data.batch_size must be >= 1, got {batch_size}")
        if num_val < 1:
            raise ValueError(f"data.num_val must be >= 1, got {num_val}")
        self.num_val, self.seed, self.batch_size, self.num_workers = num_val, seed, batch_size, num_workers
        self.pin_memory = pin_memory
        shape = dict(preprocess=preprocess, load_size=load_size, crop_size=crop_size, flip=flip)
        self.train_transform = build_transform(train=True, **shape)
        self.val_transform = build_transform(train=False, **shape)

    def _pin_memory(self) -> bool:
        if self.pin_memory is not None:
            return self.pin_memory
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"


class UnpairedDataModule(TwoDomainDataModule):
    """Streams domain A and domain B images, unpaired, to any number of DDP ranks.

    `val_a`/`val_b` name validation folders (the reference layout's testA/testB); when one
    is not given, `num_val` images of that domain are held out of training instead.
    `name` (a preset such as horse2zebra) only improves the message when data is missing.
    """

    domains: tuple[str, ...] = ("a", "b")  # a one-domain subclass (data=content) reads "a" only

    def __init__(
        self,
        *,
        persistent_workers: bool = True,
        name: str | None = None,
        **settings,
    ) -> None:
        super().__init__(**settings)  # a, b, val_a, val_b, num_val, preprocess, sizes, flip, batch, workers, seed
        self.name = name
        self.persistent_workers = persistent_workers and self.num_workers > 0
        self.files: dict[str, list[Path]] = {}
        self.sampler: UnpairedSampler | None = None
        self._resume_at: tuple[int, int] | None = None

    def _find(self, key: str) -> list[Path]:
        try:
            return find_images(self.folders[key], setting=self._setting(key))
        except FileNotFoundError as error:
            if self.name is None:
                raise
            root = Path(self.folders[key]).expanduser().parent
            raise FileNotFoundError(
                f"{error}\nThe {self.name} preset expects the reference layout {root}/{{trainA,trainB,testA,testB}}."
                f" Put the data there, or fetch it (internet needed) with:\n"
                f"  bash scripts/download_dataset.sh {self.name}\n"
                f"which downloads https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{self.name}.zip"
            ) from None

    def _setting(self, key: str) -> str:
        """The config setting behind folder `key` ("a", "val_a", ...), for error messages."""
        return f"data.{key}"

    def _split(self, domain: str) -> tuple[list[Path], list[Path]]:
        """(training files, validation files) of domain 'a' or 'b'."""
        train = self._find(domain)
        if self.folders[f"val_{domain}"] is not None:
            return train, self._find(f"val_{domain}")
        held = min(self.num_val, len(train) // 4)  # keep at least 3/4 for training
        if held < 1:
            return train, train[: self.num_val]  # too few to spare: validate on training images
        chosen = set(np.random.default_rng([self.seed, 7]).choice(len(train), held, replace=False).tolist())
        return [f for i, f in enumerate(train) if i not in chosen], [f for i, f in enumerate(train) if i in chosen]

    def setup(self, stage: str | None = None) -> None:
        """Scan the folders (fails naming a missing or empty one, or one where no image decodes) and
        build the sampler. Runs on every rank, before training."""
        if self.files:
            return
        for domain in self.domains:
            self.files[domain], self.files[f"val_{domain}"] = self._split(domain)
        self._check_readable()
        rank, world = (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)
        self.sampler = UnpairedSampler(  # one domain: the B draw of each item is A's again, unused
            len(self.files["a"]), len(self.files[self.domains[-1]]), seed=self.seed, rank=rank, world_size=world
        )
        if self._resume_at is not None:
            self.sampler.resume(*self._resume_at)

    def _check_readable(self) -> None:
        """Fail now, naming the setting and folder, if a list of images holds none that decodes
        (else the first DataLoader worker to read it would, mid-training); files are tried in
        order until one decodes. Broken files among good ones are skipped with a warning later."""
        for key in (*self.domains, *(f"val_{domain}" for domain in self.domains)):
            files, folder = self.files[key], self.folders[key]
            if folder is not None:
                first_readable(files, what=f"{self._setting(key)}: no image in {Path(folder).expanduser()}")
            else:  # validation images held out of the training folder
                train = self.folders[key.removeprefix("val_")]
                first_readable(files, what=f"{self._setting(key.removeprefix('val_'))}: none of the {len(files)} "
                                           f"validation images held out of {Path(train).expanduser()} (set "
                                           f"{self._setting(key)} to a folder)")

    def train_dataloader(self) -> DataLoader:
        dataset = UnpairedImages(self.files["a"], self.files["b"], self.train_transform)
        return self._loader(dataset, sampler=self.sampler, loader=PositionedLoader)

    def val_dataloader(self) -> DataLoader:
        dataset = PairedByIndex(self.files["val_a"], self.files["val_b"], self.val_transform)
        return self._loader(dataset, shuffle=False)

    def _loader(self, dataset, loader: type[DataLoader] = DataLoader, **kwargs) -> DataLoader:
        return loader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers,
            pin_memory=self._pin_memory(),
            drop_last=False,
            **kwargs,
        )

    # Resume: the checkpoint holds where the next iteration starts (epoch, items of it already
    # used); the sampler gets it in load_state_dict, before Lightning creates any iterator.
    def state_dict(self) -> dict:
        if self.trainer is None:
            return {}
        progress = self.trainer.fit_loop.epoch_loop.batch_progress
        batches = progress.current.processed  # counts the batch whose on_train_batch_end is saving
        epoch = self.trainer.current_epoch
        if progress.is_last_batch or batches >= self.trainer.num_training_batches:
            epoch, batches = epoch + 1, 0  # the epoch is over; Lightning resumes at the next one
        return {"next_epoch": epoch, "next_item": batches * self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if "next_epoch" in state:
            self._resume_at = (state["next_epoch"], state["next_item"])
        elif state:  # older checkpoints: {"epoch", "items_done"}; 0 items = that epoch was over
            done = state["items_done"]
            self._resume_at = (state["epoch"], done) if done else (state["epoch"] + 1, 0)
        if self.sampler is not None and self._resume_at is not None:
            self.sampler.resume(*self._resume_at)
