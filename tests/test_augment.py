"""Batch augmentation on the device: per-image randomness, correct geometry, seeded."""

from __future__ import annotations

import pytest
import torch

from core.augment import AUGMENTATIONS, TEST_TIME_AUGMENTATIONS, augment_batch, parse_augmentations


def _batch(n=64, c=1, side=28):
    x = torch.zeros(n, c, side, side)
    x[:, :, 10:18, 4:9] = 1.0  # a bar left of centre
    return x


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_shape_range_and_per_image_randomness(name):
    x = _batch(c=3)
    x[:, 1] *= 0.5  # colour, so that grayscale has something to do
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


def test_grayscale_turns_about_one_colour_image_in_ten_grey_and_leaves_grey_ones():
    x = torch.rand(2000, 3, 4, 4)
    out = AUGMENTATIONS["grayscale"](x, _gen())
    grey = (out[:, 0] == out[:, 1]).flatten(1).all(1) & (out[:, 1] == out[:, 2]).flatten(1).all(1)
    assert 0.07 < grey.float().mean() < 0.13 and torch.equal(out[~grey], x[~grey])
    mono = torch.rand(8, 1, 4, 4)
    assert torch.equal(AUGMENTATIONS["grayscale"](mono, _gen()), mono)


def test_rotation_degrees_come_from_the_config():
    x = _batch()
    assert torch.allclose(augment_batch(x, ("rotate",), _gen(), rotate_degrees=0.0), x, atol=1e-6)
    small, large = (augment_batch(x, ("rotate",), _gen(), rotate_degrees=d) for d in (5.0, 60.0))
    assert (small - x).abs().sum() < (large - x).abs().sum()


def test_test_time_views_are_a_mean_that_flips_cannot_change():
    """"flip" answers an image and its mirror alike; every view set is a mean (weights summing to one): a uniform
    image, whose shifts with reflected edges are itself, gets the plain logits."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 5))
    x = torch.rand(4, 3, 8, 8)
    views = TEST_TIME_AUGMENTATIONS
    with torch.no_grad():
        torch.testing.assert_close(views["none"](model, x), model(x))
        torch.testing.assert_close(views["flip"](model, x), views["flip"](model, x.flip(3)))
        assert not torch.allclose(views["flip"](model, x), model(x))
        uniform = torch.full((2, 3, 8, 8), 0.3)
        for name, view in views.items():
            torch.testing.assert_close(view(model, uniform), model(uniform), msg=name)
        assert not torch.allclose(views["flip-translate"](model, x), views["flip"](model, x))
