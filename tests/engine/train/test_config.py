"""The input size chosen when --img-size is not given: small images get a small input, but never one the
architecture cannot take (a ViT's fixed 224 px, a Swin's or Inception's smallest input)."""

import pytest

from engine.core.errors import ConfigError
from engine.models.registry import get_spec
from engine.models.spec import resolve_img_size


def auto(name: str, median_side: int | None) -> int:
    spec = get_spec(name)
    size = resolve_img_size(None, spec.input_size, median_side, spec.min_input, spec.fixed_input)
    spec.preprocessing(size)  # the registry accepts it (raises ConfigError otherwise)
    return size


def test_small_images_get_a_small_input_on_a_convolutional_backbone():
    assert auto("efficientnet_lite0", 8) == 64
    assert auto("efficientnet_lite0", 100) == 128
    assert auto("efficientnet_lite0", 1000) == 224


@pytest.mark.parametrize("name", ["vit_b_16", "maxvit_t"])
def test_a_fixed_input_backbone_keeps_its_size_on_small_images(name):
    assert auto(name, 8) == get_spec(name).input_size


@pytest.mark.parametrize("name, smallest", [("swin_t", 224), ("inception_v3", 75)])
def test_the_small_image_size_never_goes_below_the_architecture_s_smallest_input(name, smallest):
    assert auto(name, 8) >= smallest


def test_an_explicit_size_is_kept_and_checked_by_the_registry():
    spec = get_spec("vit_b_16")
    assert resolve_img_size(96, spec.input_size, 8, spec.min_input, spec.fixed_input) == 96
    with pytest.raises(ConfigError, match="takes exactly 224 px"):
        spec.preprocessing(96)
