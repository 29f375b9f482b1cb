from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lockstep import data


def _write_image(path: Path, color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)


def test_generated_examples_are_deterministic():
    first = data.generate_examples(3, seed=5, size=24)
    second = data.generate_examples(3, seed=5, size=24)
    other = data.generate_examples(3, seed=6, size=24)
    assert [e.label for e in first] == [0, 1, 2, 3] * 3
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(np.asarray(first[0].image), np.asarray(other[0].image))


def test_generated_dataset_validation_is_disjoint_from_training():
    dataset = data.generated_dataset(samples_per_class=8, seed=0, size=16, val_fraction=0.2)
    assert dataset.classes == list(data.SHAPES)
    assert len(dataset.train) == 32
    assert len(dataset.val) == 8
    train_pixels = {np.asarray(e.image).tobytes() for e in dataset.train}
    assert not any(np.asarray(e.image).tobytes() in train_pixels for e in dataset.val)


def test_scan_folder_missing_folder_names_it_and_layout(tmp_path: Path):
    with pytest.raises(data.DataError) as raised:
        data.scan_folder(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(raised.value)
    assert "one folder per class" in str(raised.value)


def test_scan_folder_without_images_fails_with_layout(tmp_path: Path):
    (tmp_path / "cats").mkdir()
    (tmp_path / "cats" / "notes.txt").write_text("not an image")
    with pytest.raises(data.DataError) as raised:
        data.scan_folder(tmp_path)
    assert "contains no readable images" in str(raised.value)
    assert "DATA_DIR/" in str(raised.value)


def test_scan_folder_single_class_fails(tmp_path: Path):
    _write_image(tmp_path / "cats" / "a.png")
    with pytest.raises(data.DataError, match=r"a single class \(cats\)"):
        data.scan_folder(tmp_path)


def test_scan_folder_skips_unreadable_image_with_warning(tmp_path: Path, caplog):
    _write_image(tmp_path / "cats" / "a.png")
    _write_image(tmp_path / "dogs" / "b.png")
    broken = tmp_path / "dogs" / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    with caplog.at_level(logging.WARNING):
        classes, items, skipped = data.scan_folder(tmp_path)
    assert classes == ["cats", "dogs"]
    assert [(p.name, label) for p, label in items] == [("a.png", 0), ("b.png", 1)]
    assert skipped == [str(broken)]
    assert str(broken) in caplog.text


def test_folder_dataset_splits_every_class(tmp_path: Path):
    for index in range(5):
        _write_image(tmp_path / "cats" / f"{index}.png")
        _write_image(tmp_path / "dogs" / f"{index}.png", (10, 10, 200))
    dataset = data.folder_dataset(tmp_path, seed=0, val_fraction=0.2)
    assert sorted(e.label for e in dataset.val) == [0, 1]
    assert len(dataset.train) == 8
    assert dataset.source["kind"] == "folder"
    assert dataset.train[0].load().mode == "RGB"


def test_scan_folder_truncated_jpeg(tmp_path: Path, caplog):
    # verify() accepts a JPEG whose pixel data stops early; only decoding finds it.
    _write_image(tmp_path / "cats" / "a.png")
    _write_image(tmp_path / "dogs" / "b.png")
    whole = tmp_path / "whole.jpg"
    Image.effect_noise((64, 64), 50).convert("RGB").save(whole, quality=95)
    cut = tmp_path / "dogs" / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with caplog.at_level(logging.WARNING):
        _, items, skipped = data.scan_folder(tmp_path)
    assert skipped == [str(cut)]
    assert str(cut) in caplog.text
    assert cut not in [path for path, _ in items]


def test_scan_folder_unlistable_class(tmp_path: Path):
    # Unit tests run as an unprivileged user, so mode 000 really hides the folder's contents.
    _write_image(tmp_path / "cats" / "a.png")
    _write_image(tmp_path / "dogs" / "b.png")
    _write_image(tmp_path / "owls" / "c.png")
    (tmp_path / "owls").chmod(0)
    try:
        with pytest.raises(data.DataError) as raised:
            data.scan_folder(tmp_path)
    finally:
        (tmp_path / "owls").chmod(0o755)
    assert f"cannot list {tmp_path / 'owls'} (Permission denied)" in str(raised.value)
    assert "chmod -R a+rX" in str(raised.value)


def test_example_load_vanished_file(tmp_path: Path):
    example = data.Example(0, path=tmp_path / "gone.png")
    with pytest.raises(data.DataError, match=r"gone\.png could no longer be read during training"):
        example.load()


def test_folder_dataset_high_val_fraction(tmp_path: Path):
    for index in range(3):
        _write_image(tmp_path / "cats" / f"{index}.png")
        _write_image(tmp_path / "dogs" / f"{index}.png", (10, 10, 200))
    dataset = data.folder_dataset(tmp_path, seed=0, val_fraction=0.99)
    assert sorted(e.label for e in dataset.train) == [0, 1]
    assert len(dataset.val) == 4


def test_scan_folder_dangling_symlink(tmp_path: Path, caplog):
    _write_image(tmp_path / "cats" / "a.png")
    _write_image(tmp_path / "dogs" / "b.png")
    dangling = tmp_path / "dogs" / "gone.jpg"
    dangling.symlink_to(tmp_path / "nowhere.jpg")
    with caplog.at_level(logging.WARNING):
        _, _, skipped = data.scan_folder(tmp_path)
    assert skipped == [str(dangling)]
    assert f"Skipping unreadable image {dangling}" in caplog.text
