"""Batch augmentation on the device: per-image randomness, correct geometry, seeded."""

from __future__ import annotations

import pytest
import torch

from core.augment import AUGMENTATIONS, augment_batch, parse_augmentations


def _batch(n=64, c=1, side=28):
    x = torch.zeros(n, c, side, side)
    x[:, :, 10:18, 4:9] = 1.0  # a bar left of centre
    return x


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_shape_range_and_per_image_randomness(name):
    x = _batch()
    out = AUGMENTATIONS[name](x.clone(), _gen())
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out != x).flatten(1).any(1)
    # some images changed and, for the per-image coin flips and draws, not all in the same way
    assert changed.any()
    distinct = {tuple(o.flatten().tolist()) for o in out}
    assert len(distinct) > 1


def test_flip_mirrors_exactly_the_chosen_images():
    x = _batch()
    out = AUGMENTATIONS["flip"](x, _gen())
    flipped = (out != x).flatten(1).any(1)
    assert 10 < flipped.sum() < 54
    assert torch.equal(out[flipped], x[flipped].flip(-1))


def test_invert_turns_ink_into_background():
    x = _batch()
    out = AUGMENTATIONS["invert"](x, _gen())
    inverted = (out != x).flatten(1).any(1)
    assert torch.allclose(out[inverted], 1 - x[inverted])


def test_crop_is_a_whole_pixel_shift_within_the_padding():
    x = _batch()
    out = AUGMENTATIONS["crop"](x, _gen())
    for before, after in zip(x, out):
        ys, xs = torch.nonzero(after[0] > 0.5, as_tuple=True)
        assert after.sum() == before.sum()  # nothing lost: the bar stays inside the image
        assert 8 <= ys.min() <= 12 and 2 <= xs.min() <= 6


def test_rotation_keeps_the_ink_near_its_mass():
    x = _batch()
    out = AUGMENTATIONS["rotate"](x, _gen())
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.15)


def test_erasing_only_sets_pixels_to_zero():
    x = torch.ones(32, 3, 32, 32)
    out = AUGMENTATIONS["erase"](x, _gen())
    erased = (out == 0).flatten(1).sum(1)
    assert ((out == 0) | (out == 1)).all()
    assert (erased > 0).sum() > 4 and (erased == 0).sum() > 4
    assert erased.max() <= 0.2 * 32 * 32 * 3 + 3 * 32  # at most 20 % of the area (plus rounding)


def test_same_seed_same_augmentation():
    names = parse_augmentations("rotate,crop,flip,erase")
    a = augment_batch(_batch(), names, _gen(5))
    b = augment_batch(_batch(), names, _gen(5))
    c = augment_batch(_batch(), names, _gen(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_parse_refuses_unknown_names():
    assert parse_augmentations("rotate, crop") == ("rotate", "crop")
    assert parse_augmentations(None) == ()
    with pytest.raises(ValueError, match="Unknown augmentation blur"):
        parse_augmentations("rotate,blur")
