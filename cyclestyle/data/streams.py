"""Two unpaired collections streamed with litdata to any number of ranks and nodes.

Each domain is a packed data set (`cyclestyle pack`: a local folder or an s3:// or gs://
URL) or a plain image folder, which is packed once into the local cache (original
file bytes, broken files skipped) so both kinds stream the same way.

Epochs and ranks: litdata splits domain A's items across ranks and DataLoader workers, reshuffled
every epoch, and drops the last `len(A) mod (ranks x batch size)` items so that every rank runs
the same number of iterations. One epoch = one pass over A. Domain B is one endless stream beside
it, from each rank's own share, reshuffled at each of its passes: B's passes run on across A's
epochs (an epoch's end does not cut B's pass short, so every B image is drawn equally often), and
B is drawn independently of A and differently on every rank.

Reproducible and exact on resume: every item is augmented with its own seed, made from (seed,
pass, item index), so the augmentation does not depend on the worker count or on the process's
RNG. Lightning stores both loaders' positions (pass and items read) in the checkpoint, and a
resumed run, mid-epoch or at an epoch's end, continues both streams bitwise as an uninterrupted
run would (with the first run's ranks, workers and batch size).
"""
from __future__ import annotations

import hashlib
import inspect
import io
import os
import re
from pathlib import Path
from typing import Any, Iterator, Sequence

import albumentations as A
import litdata
import numpy as np
import torch
from pytorch_lightning.utilities import CombinedLoader, rank_zero_info
from torch.utils.data import DataLoader

from .datamodule import TwoDomainDataModule
from .datasets import OneDomain, PairedByIndex
from .images import find_images, load_rgb
from ..errors import first_line
from .object_store import StorageError, allow_plain_http_endpoint, is_remote, is_stream
from .transforms import seed_augmentation

allow_plain_http_endpoint()  # at import too: DataLoader workers started with spawn import this module


class AugmentedStream(litdata.StreamingDataset):
    """Training items {"image": bytes, ...} -> (3, H, W) float tensors in [-1, 1], each augmented
    with its own seed from (the stream's seed, its pass, the item's index in the data set).

    litdata's `transform` hook sees only the item; this sees its index and pass too. Both are
    what litdata restores on resume, and neither depends on the worker that reads the item nor on
    the process's RNG (albumentations keeps its own, offset by `torch.initial_seed()` in workers)."""

    def __init__(self, *args, augment: A.Compose, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.augment = augment

    def __getitem__(self, index) -> torch.Tensor:  # index: a ChunkedIndex while streaming, an int for stream[i]
        item = super().__getitem__(index)
        entropy = [self.seed, self.current_epoch, int(getattr(index, "index", index))]
        augment = seed_augmentation(self.augment, int(np.random.SeedSequence(entropy).generate_state(1)[0]))
        return augment(image=load_rgb(io.BytesIO(item["image"])))["image"]


def reading_failure(error: BaseException) -> str:
    """The line that says why a stream read failed. A DataLoader worker's error arrives as its whole
    traceback in text ("Caught ... in DataLoader worker process 0. Original Traceback ..."); the
    reason is its last exception line (e.g. obstore's 'Error performing GET .../chunk-0-0.bin ...
    after 5 retries')."""
    text = str(error)
    if "Original Traceback" in text:
        raised = [line for line in text.split("Original Traceback", 1)[1].splitlines()
                  if re.match(r"^[A-Za-z_][\w.]*(Error|Exception): ", line)]
        if raised:
            return raised[-1][:400]
    return first_line(error)


def open_stream(uri: str, *, setting: str, transform: A.Compose | None = None, shuffle: bool = False,
                seed: int = 0, cache_dir: str | None = None, max_cache_size: str = "50GB"):
    """litdata StreamingDataset over `uri` (an `AugmentedStream` given a `transform`); fails naming
    `setting` and the URI when it cannot."""
    kwargs = dict(shuffle=shuffle, drop_last=True, seed=seed, cache_dir=cache_dir, max_cache_size=max_cache_size)
    allow_plain_http_endpoint()  # AWS_ENDPOINT_URL may have been set after import
    try:
        if transform is not None:
            return AugmentedStream(uri, augment=transform, **kwargs)
        return litdata.StreamingDataset(uri, **kwargs)
    except Exception as error:  # litdata raises FileNotFoundError, ValueError, botocore ClientError...
        raise FileNotFoundError(f"{setting}={uri}: cannot open this packed data set ({type(error).__name__}: {error}). "
                                f"Pack a folder with `cyclestyle pack FOLDER {uri}`.") from error


class StreamPass:
    """A stateful loader whose every `iter()` is a new pass (Lightning checkpoints its position).

    litdata keeps a loaded position until a pass runs to its end, but Lightning stops asking
    for batches after the epoch's last one; so only the first pass after a resume restores."""

    def __init__(self, loader, label: str) -> None:
        self.loader, self.label = loader, label  # label: the setting and URI, for error messages
        self._started = False

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator:
        if self._started:
            self.loader.restore = False
        self._started = True
        try:
            yield from self.loader
        except Exception as error:  # a corrupt or missing chunk, a store gone away: which data set, why
            raise StorageError(f"{self.label}: reading the packed data set failed: {reading_failure(error)}; "
                               "resume from the last checkpoint (ckpt_path=last) once it reads again"
                               ) from error

    def state_dict(self) -> dict[str, Any]:
        return self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state)
        self._started = False


class EndlessPasses:
    """Domain B: one stream for the whole run, pass after pass (each reshuffled), never ending, so
    domain A sets the epoch.

    Lightning calls `iter()` at every epoch; each call continues the same stream. Starting a new
    one would abandon B's half-read pass at every epoch's end, which a resumed run (restoring B's
    position in that pass) would not do, and would draw B's first images of a pass more often."""

    def __init__(self, loader, label: str) -> None:
        self.passes = StreamPass(loader, label)
        self._stream: Iterator | None = None

    def __len__(self) -> int:
        raise TypeError("endless")  # Lightning reads this as "no length"

    def __iter__(self) -> Iterator:
        if self._stream is None or inspect.getgeneratorstate(self._stream) == inspect.GEN_CLOSED:  # closed: an error
            self._stream = _endless(self.passes)
        return self._stream

    def state_dict(self) -> dict[str, Any]:
        return self.passes.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.passes.load_state_dict(state)
        self.close()  # the next iter() starts from the loaded position

    def close(self) -> None:
        """Ends the stream and its DataLoader workers (Lightning never does: the stream outlives epochs)."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None


def _endless(passes: StreamPass) -> Iterator:
    """Not a method: a generator holding its owner would be a reference cycle, left to the garbage
    collector, whose late shutdown of the DataLoader workers waits seconds for each."""
    while True:
        yield from passes


class ValidationSlice:
    """The first `count` images of a packed set, as file-like objects for `PairedByIndex`."""

    def __init__(self, stream, count: int) -> None:
        self.stream, self.count = stream, min(count, len(stream))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> io.BytesIO:
        if not 0 <= i < self.count:
            raise IndexError(i)
        return io.BytesIO(self.stream[i]["image"])


class StreamingUnpairedDataModule(TwoDomainDataModule):
    """Domain A and B from packed streams or folders (mixed freely), unpaired; see the module doc.

    `val_a`/`val_b`: a folder or packed set of validation images; when not given, the first
    `num_val` images of the training collection are used (they stay in training).
    `cache_dir`: folders given as `a`/`b` are packed under `cache_dir`/packed; `chunk_cache_dir`:
    where remote chunks are cached (None: litdata's ~/.lightning/chunks), capped at `max_cache_size`.
    """

    def __init__(
        self,
        *,
        cache_dir: str = "~/.cache/cyclestyle",
        chunk_cache_dir: str | None = None,
        max_cache_size: str = "50GB",
        **settings,
    ) -> None:
        super().__init__(**settings)  # a, b, val_a, val_b, num_val, preprocess, sizes, flip, batch, workers, seed
        self.sources = {key: None if value is None else str(value) for key, value in self.folders.items()}
        self.cache_dir, self.chunk_cache_dir, self.max_cache_size = Path(cache_dir).expanduser(), chunk_cache_dir, max_cache_size
        self.streams: dict[str, str] = {}
        self._b: EndlessPasses | None = None  # the running B stream, closed in teardown

    domains: tuple[str, ...] = ("a", "b")  # a one-domain subclass (data=content_stream) streams "a" only

    def _setting(self, key: str) -> str:
        """The config setting behind source `key` ("a", "val_a", ...), for messages."""
        return f"data.{key}"

    def _packed_folder(self, key: str) -> Path:
        """Where folder `data.<key>` is packed: keyed by its path and its files' names, sizes and times."""
        folder = self.sources[key]
        files = find_images(folder, setting=self._setting(key))
        listing = "\n".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
        digest = hashlib.sha256(os.fsencode(f"{Path(folder).expanduser().resolve()}\n{listing}")).hexdigest()[:16]
        return self.cache_dir / "packed" / f"{Path(folder).name}-{digest}"

    def prepare_data(self) -> None:
        """Packs folder domains into the cache (once per node: Lightning runs this on local rank 0)."""
        from .packing import pack

        for key in self.domains:
            source = self.sources[key]
            if is_stream(source):
                continue
            target = self._packed_folder(key)
            if not (target / "index.json").is_file():
                rank_zero_info(f"{self._setting(key)}={source}: packing the folder for streaming into {target}")
                result = pack(source, str(target), max_side=None, image_format="original", overwrite=True,
                              progress=False)
                for path, reason in result.skipped:
                    rank_zero_info(f"skipping unreadable image {path}: {reason}")

    def setup(self, stage: str | None = None) -> None:
        """Resolves each domain to a stream (here, not earlier: litdata reads the rank when opened)."""
        if self.streams:
            return
        for key in self.domains:
            source = self.sources[key]
            if not is_remote(source) and not Path(source).expanduser().exists():
                raise FileNotFoundError(f"{self._setting(key)}: not found: {source}")
            self.streams[key] = source if is_stream(source) else str(self._packed_folder(key))
            open_stream(self.streams[key], setting=self._setting(key), cache_dir=self.chunk_cache_dir)  # fail early, by name

    def _stream_loader(self, key: str, seed: int) -> Any:
        dataset = open_stream(self.streams[key], setting=self._setting(key), transform=self.train_transform, shuffle=True,
                              seed=seed, cache_dir=self.chunk_cache_dir, max_cache_size=self.max_cache_size)
        if len(dataset) < self.batch_size:
            raise ValueError(f"{self._setting(key)}={self.sources[key]}: {len(dataset)} images per rank, fewer than "
                             f"data.batch_size={self.batch_size}")
        return litdata.StreamingDataLoader(dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                                           pin_memory=self._pin_memory(), drop_last=True)

    def train_dataloader(self) -> CombinedLoader:
        self.teardown()  # a previous B stream, if Lightning reloads the loaders
        a = StreamPass(self._stream_loader("a", self.seed), f"{self._setting('a')}={self.sources['a']}")
        if "b" not in self.domains:
            return CombinedLoader({"A": a}, mode="min_size")
        self._b = EndlessPasses(self._stream_loader("b", self.seed + 1), f"{self._setting('b')}={self.sources['b']}")
        return CombinedLoader({"A": a, "B": self._b}, mode="min_size")  # A's pass sets the epoch

    def teardown(self, stage: str | None = None) -> None:
        """Stops B's stream, which outlives every epoch."""
        if self._b is not None:
            self._b.close()

    def val_dataloader(self) -> DataLoader:
        images = [self._validation_images(domain) for domain in self.domains]
        dataset = PairedByIndex(*images, self.val_transform) if len(images) == 2 else OneDomain(images[0], self.val_transform)
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=0, shuffle=False)

    def _validation_images(self, domain: str) -> Sequence:
        source = self.sources[f"val_{domain}"]
        if source is not None and not is_stream(source):
            return find_images(source, setting=self._setting(f"val_{domain}"))
        stream = open_stream(source or self.streams[domain],
                             setting=self._setting(f"val_{domain}" if source else domain),
                             cache_dir=self.chunk_cache_dir)
        return ValidationSlice(stream, self.num_val)
