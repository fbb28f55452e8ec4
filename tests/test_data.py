import io
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from cyclestyle.data import (
    UnpairedDataModule,
    UnpairedSampler,
    build_transform,
    find_images,
    load_rgb,
)
from cyclestyle.data.datasets import UnpairedImages

from conftest import write_images


def test_find_images_is_recursive_and_filters_extensions(tmp_path):
    write_images(tmp_path / "x" / "deep", 2)
    for name in ("a.JPG", "b.jpeg", "c.webp", "d.bmp", "e.tif", "f.tiff"):
        Image.new("RGB", (8, 8)).save(tmp_path / name, format={"jpg": "JPEG", "jpeg": "JPEG", "tif": "TIFF"}.get(
            name.split(".")[1].lower(), name.split(".")[1].upper()))
    (tmp_path / "notes.txt").write_text("not an image")
    found = find_images(tmp_path)
    assert len(found) == 8
    assert all(p.suffix.lower() != ".txt" for p in found)


@pytest.mark.parametrize("make,message", [
    (lambda p: p / "missing", "folder not found"),
    (lambda p: p, "no images"),
])
def test_find_images_fails_naming_the_folder_and_setting(tmp_path, make, message):
    (tmp_path / "readme.txt").write_text("x")
    folder = make(tmp_path)
    with pytest.raises((FileNotFoundError, ValueError), match=message) as info:
        find_images(folder, setting="data.a")
    assert str(folder) in str(info.value) and "data.a" in str(info.value)


def _save(image: Image.Image, path, **kwargs):
    image.save(path, **kwargs)
    return path


def test_modes_become_rgb(tmp_path):
    gray = _save(Image.new("L", (5, 4), 128), tmp_path / "gray.jpg")
    palette = _save(Image.new("RGB", (5, 4), (255, 0, 0)).convert("P"), tmp_path / "palette.png")
    rgba = _save(Image.new("RGBA", (5, 4), (0, 0, 255, 0)), tmp_path / "rgba.png")
    cmyk = _save(Image.new("CMYK", (5, 4), (0, 255, 255, 0)), tmp_path / "cmyk.jpg")
    sixteen = _save(Image.fromarray(np.full((4, 5), 65535 // 2, dtype=np.uint16)), tmp_path / "sixteen.png")
    for path in (gray, palette, rgba, cmyk, sixteen):
        rgb = load_rgb(path)
        assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8, path
    assert abs(int(load_rgb(gray)[0, 0, 0]) - 128) <= 2
    assert tuple(load_rgb(palette)[0, 0]) == (255, 0, 0)
    assert tuple(load_rgb(rgba)[0, 0]) == (255, 255, 255)  # fully transparent -> white
    assert load_rgb(cmyk)[0, 0, 0] > 200 and load_rgb(cmyk)[0, 0, 1] < 50
    assert abs(int(load_rgb(sixteen)[0, 0, 0]) - 128) <= 1  # scaled, not clipped to white


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (6, 3))
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    image.save(tmp_path / "rot.jpg", exif=exif.tobytes())
    assert load_rgb(tmp_path / "rot.jpg").shape == (6, 3, 3)


@pytest.mark.parametrize("mode,shape", [
    ("resize_and_crop", (3, 32, 32)),
    ("crop", (3, 32, 32)),
    ("scale_width", (3, 56, 36)),  # 40x60 (WxH) -> width 36, height 54 -> rounded to 56
    ("scale_width_and_crop", (3, 32, 32)),
    ("none", (3, 60, 40)),
])
def test_preprocess_modes(mode, shape):
    image = np.random.default_rng(0).integers(0, 256, (60, 40, 3), dtype=np.uint8)
    out = build_transform(preprocess=mode, load_size=36, crop_size=32, flip=True, train=True)(image=image)["image"]
    assert out.shape == shape and out.dtype == torch.float32
    assert out.min() >= -1.0 and out.max() <= 1.0


def test_small_images_are_resized_up_before_cropping():
    tiny = np.zeros((10, 12, 3), dtype=np.uint8)
    out = build_transform(preprocess="crop", load_size=36, crop_size=32, flip=False, train=True)(image=tiny)["image"]
    assert out.shape == (3, 32, 32)


def test_crop_larger_than_load_fails_naming_the_setting():
    with pytest.raises(ValueError, match=r"data\.crop_size"):
        build_transform(preprocess="resize_and_crop", load_size=32, crop_size=64, flip=True, train=True)


def test_flip_off_never_flips_and_seeded_augmentation_repeats():
    from cyclestyle.data.transforms import seed_augmentation

    ramp = np.tile(np.arange(32, dtype=np.uint8)[None, :, None] * 8, (32, 1, 3))  # brighter to the right
    for flip in (False, True):
        t = build_transform(preprocess="crop", load_size=32, crop_size=32, flip=flip, train=True)
        flipped = [bool(seed_augmentation(t, seed)(image=ramp)["image"][0, 0, 0] > 0) for seed in range(40)]
        assert any(flipped) == flip and (all(flipped) is False)  # off: never; on: sometimes, not always
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    t = build_transform(preprocess="resize_and_crop", load_size=36, crop_size=32, flip=True, train=True)
    first = seed_augmentation(t, 7)(image=image)["image"]
    assert torch.equal(first, seed_augmentation(t, 7)(image=image)["image"])
    assert any(not torch.equal(first, seed_augmentation(t, s)(image=image)["image"]) for s in range(8, 12))


def test_sampler_shards_the_larger_domain_disjointly_with_equal_lengths():
    shards = [UnpairedSampler(10, 3, seed=1, rank=r, world_size=3) for r in range(3)]
    items = [s.items(epoch=0) for s in shards]
    assert {len(i) for i in items} == {4}  # ceil(10 / 3): every rank runs as many iterations
    a_indices = [a for rank_items in items for a, _, _ in rank_items]
    assert set(a_indices) == set(range(10))  # every A image once (2 repeated as padding)
    assert sorted(Counter(a_indices).values()) == [1] * 8 + [2] * 2  # only the padding repeats
    halves = [UnpairedSampler(10, 3, seed=1, rank=r, world_size=2).items(0) for r in range(2)]
    assert not {a for a, _, _ in halves[0]} & {a for a, _, _ in halves[1]}  # no padding: disjoint
    assert all(0 <= b < 3 for rank_items in items for _, b, _ in rank_items)


def test_sampler_is_reproducible_and_changes_per_epoch():
    s = UnpairedSampler(5, 20, seed=3)
    assert s.items(0) == UnpairedSampler(5, 20, seed=3).items(0)
    assert s.items(0) != s.items(1)
    b_indices = sorted(b for _, b, _ in s.items(0))
    assert b_indices == list(range(20))  # B is larger: it defines the epoch
    s.set_epoch(1)
    assert list(s) == s.items(1)


def test_sampler_resumes_inside_an_epoch():
    s = UnpairedSampler(8, 8, seed=0)
    s.set_epoch(2)
    s.resume_at = (2, 3)
    assert list(s) == s.items(2)[3:]
    assert list(s) == s.items(2)  # only once


def _corrupt_files(folder):
    good = (folder / "img_000.png").read_bytes()
    (folder / "truncated.jpg").write_bytes(_jpeg_bytes()[:200])
    (folder / "not_really.png").write_text("this is text, not a PNG")
    return good


def _jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def test_broken_images_are_skipped_with_a_warning_naming_them(tmp_path):
    a = write_images(tmp_path / "A", 2)
    _corrupt_files(tmp_path / "A")
    files = find_images(tmp_path / "A")
    assert len(files) == 4
    dataset = UnpairedImages(files, files, build_transform(preprocess="crop", load_size=32, crop_size=32, flip=False, train=True))
    with pytest.warns(UserWarning) as record:
        for i in range(len(files)):
            item = dataset[(i, i, 0)]
            assert item["A"].shape == (3, 32, 32)
    messages = " ".join(str(w.message) for w in record)
    assert "not_really.png" in messages and "truncated.jpg" in messages
    assert len(a) == 2


def test_datamodule_holds_out_validation_images(folders):
    a, b = folders
    dm = UnpairedDataModule(a=str(a), b=str(b), num_val=2, load_size=36, crop_size=32, num_workers=0)
    dm.setup("fit")
    assert len(dm.files["a"]) == 6 and len(dm.files["val_a"]) == 2
    assert len(dm.files["b"]) == 5 and len(dm.files["val_b"]) == 1  # at most a quarter is held out
    assert not set(dm.files["a"]) & set(dm.files["val_a"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["A"].shape == (1, 3, 32, 32) and batch["B"].shape == (1, 3, 32, 32)
    val = next(iter(dm.val_dataloader()))
    assert val["A"].shape == (1, 3, 32, 32)


def test_datamodule_uses_test_folders_when_given(folders, tmp_path):
    a, b = folders
    write_images(tmp_path / "testA", 3)
    dm = UnpairedDataModule(a=str(a), b=str(b), val_a=str(tmp_path / "testA"), num_workers=0)
    dm.setup("fit")
    assert len(dm.files["a"]) == 8 and len(dm.files["val_a"]) == 3


def test_invalid_values_name_the_setting(folders):
    a, b = folders
    with pytest.raises(ValueError, match=r"data\.preprocess"):
        UnpairedDataModule(a=str(a), b=str(b), preprocess="zoom")
    with pytest.raises(ValueError, match=r"data\.batch_size"):
        UnpairedDataModule(a=str(a), b=str(b), batch_size=0)


@pytest.mark.parametrize("device, pinned", [("cuda", True), ("cpu", False)])
def test_batches_are_pinned_when_training_on_a_gpu(folders, tmp_path, device, pinned):
    from types import SimpleNamespace

    from cyclestyle.data.streams import StreamingUnpairedDataModule

    a, b = folders
    for module in (UnpairedDataModule(a=str(a), b=str(b), num_workers=0),
                   StreamingUnpairedDataModule(a=str(a), b=str(b), cache_dir=str(tmp_path))):
        module.trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device(device)))
        assert module._pin_memory() is pinned
        module.pin_memory = False  # an explicit setting wins
        assert module._pin_memory() is False


def test_a_seeded_crop_does_not_decide_the_flip():
    """Seeding every step with the same seed (Compose.set_random_seed) tied RandomCrop's vertical
    offset to HorizontalFlip's coin: upper crops were always flipped, lower ones never."""
    from cyclestyle.data.transforms import build_transform, seed_augmentation

    transform = build_transform(train=True, preprocess="crop", load_size=64, crop_size=32, flip=True)
    rows = np.tile(np.arange(64, dtype=np.uint8)[:, None, None] * 4, (1, 64, 3))  # value = 4 * row
    cols = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (64, 1, 3))
    counts = {}
    for seed in range(400):
        top = int(round((seed_augmentation(transform, seed)(image=rows)["image"][0, 0, 0].item() + 1) * 127.5 / 4))
        first = seed_augmentation(transform, seed)(image=cols)["image"][0, 0]
        flipped = bool(first[0] > first[-1])
        key = (top < 16, flipped)
        counts[key] = counts.get(key, 0) + 1
    assert all(counts.get(key, 0) > 50 for key in [(True, True), (True, False), (False, True), (False, False)]), counts
