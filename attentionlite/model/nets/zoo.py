"""The model registry: every variant is a registered function that fills arguments (timm's pattern).

``create_model(name, num_classes, image_size, **overrides)`` builds a variant
and records ``model.arch`` so that ``create_model(**model.arch)`` rebuilds it.
An override is any keyword of the registered function (``width`` for all;
``kernel_size`` and ``heads`` for the students; ``embed_dim`` and ``depth`` for the ViTs), with the
type of its default; a builder that takes ``image_size`` (the ViTs: their patch
size) gets it.  Every model also carries ``stage_modules``, the module paths of
its four stages (none for a ViT).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, cast

from torch import nn

from attentionlite.errors import InputError
from attentionlite.model.nets.resnet import ResNet, resnet
from attentionlite.model.nets.students import sasa_resnet
from attentionlite.model.nets.vit import DistilledVisionTransformer, VisionTransformer

ModelBuilder = Callable[..., nn.Module]
BUILT_FROM = ("num_classes", "image_size")  # what create_model passes itself; not overrides

_REGISTRY: dict[str, ModelBuilder] = {}

RESNET26_BLOCKS = (1, 2, 4, 1)
RESNET38_BLOCKS = (2, 3, 5, 2)
RESNET50_BLOCKS = (3, 4, 6, 3)
# Three stride-2 stages: the side must survive halving three times without a remainder.
IMAGE_SIZE_DIVISOR = 8
# The largest override of each size, so that a mistyped value is refused before it asks for terabytes or days:
# a ResNet-50 at width 8 holds 1.5 G parameters (6 GB in float32); ViT-G, the largest published ViT, is 1,664
# wide and 48 deep.  A window wider than the image (kernel_size) is checked against the image size.
MAX_OVERRIDES = {"width": 8.0, "embed_dim": 4096, "depth": 64, "heads": 256}


def register_model(builder: ModelBuilder) -> ModelBuilder:
    """Register ``builder(num_classes, **overrides) -> nn.Module`` under its function name."""
    _REGISTRY[builder.__name__] = builder
    return builder


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def model_options(name: str) -> tuple[str, ...]:
    """The overrides registered model ``name`` takes (``width``, ``heads``...)."""
    builder = _REGISTRY.get(name)
    if builder is None:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(list_models())}")
    return tuple(key for key in inspect.signature(builder).parameters if key not in BUILT_FROM)


def create_model(name: str, num_classes: int = 10, image_size: int = 32, **overrides) -> nn.Module:
    """Build the registered model ``name``; unknown names and bad overrides raise InputError."""
    builder = _REGISTRY.get(name)
    if builder is None:
        raise InputError(f"unknown model {name!r}; expected one of {', '.join(list_models())}")
    _check_positive_int("num_classes", num_classes)
    _check_positive_int("image_size", image_size)
    if image_size % IMAGE_SIZE_DIVISOR:
        raise InputError(f"image_size={image_size}: expected a multiple of {IMAGE_SIZE_DIVISOR}")
    _check_overrides(name, builder, overrides)
    if overrides.get("kernel_size", 0) > image_size:
        raise InputError(f"override kernel_size={overrides['kernel_size']} for model {name!r}: expected a window "
                         f"of at most the image size, {image_size}")
    sized = {"image_size": image_size} if "image_size" in inspect.signature(builder).parameters else {}
    try:
        model = builder(num_classes=num_classes, **sized, **overrides)
    except ValueError as error:
        raise InputError(f"model {name!r} with {overrides}: {error}") from error
    cast(Any, model).arch = {"name": name, "num_classes": num_classes, "image_size": image_size, **overrides}
    return model


def _check_positive_int(key: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{key}={value!r}: expected a positive integer")


def _check_overrides(name: str, builder: ModelBuilder, overrides: dict) -> None:
    """Each override must be a keyword of ``builder`` and a positive finite number of its default's type, at most
    its :data:`MAX_OVERRIDES` entry."""
    defaults = {key: p.default for key, p in inspect.signature(builder).parameters.items() if key not in BUILT_FROM}
    for key, value in overrides.items():
        if key not in defaults:
            raise InputError(f"unknown override {key!r} for model {name!r}; expected one of {', '.join(defaults)}")
        expected = (int, float) if isinstance(defaults[key], float) else type(defaults[key])
        if isinstance(value, bool) or not isinstance(value, expected) or not 0 < value < math.inf:
            expected_name = type(defaults[key]).__name__
            raise InputError(f"override {key}={value!r} for model {name!r}: expected a positive {expected_name}")
        if value > MAX_OVERRIDES.get(key, math.inf):
            raise InputError(f"override {key}={value!r} for model {name!r}: expected at most {MAX_OVERRIDES[key]:g}")


@register_model
def resnet26(num_classes: int, width: float = 1.0) -> ResNet:
    return resnet(RESNET26_BLOCKS, num_classes, width)


@register_model
def resnet38(num_classes: int, width: float = 1.0) -> ResNet:
    return resnet(RESNET38_BLOCKS, num_classes, width)


@register_model
def resnet50(num_classes: int, width: float = 1.0) -> ResNet:
    """The teacher: CIFAR ResNet-50."""
    return resnet(RESNET50_BLOCKS, num_classes, width)


@register_model
def sasa26_hybrid(num_classes: int, width: float = 1.0, kernel_size: int = 7, heads: int = 8) -> ResNet:
    return sasa_resnet(RESNET26_BLOCKS, num_classes, False, width, kernel_size, heads)


@register_model
def sasa26_homogeneous(num_classes: int, width: float = 1.0, kernel_size: int = 7, heads: int = 8) -> ResNet:
    return sasa_resnet(RESNET26_BLOCKS, num_classes, True, width, kernel_size, heads)


@register_model
def sasa38_hybrid(num_classes: int, width: float = 1.0, kernel_size: int = 7, heads: int = 8) -> ResNet:
    return sasa_resnet(RESNET38_BLOCKS, num_classes, False, width, kernel_size, heads)


@register_model
def sasa38_homogeneous(num_classes: int, width: float = 1.0, kernel_size: int = 7, heads: int = 8) -> ResNet:
    return sasa_resnet(RESNET38_BLOCKS, num_classes, True, width, kernel_size, heads)


@register_model
def sasa50_hybrid(num_classes: int, width: float = 1.0, kernel_size: int = 7, heads: int = 8) -> ResNet:
    return sasa_resnet(RESNET50_BLOCKS, num_classes, False, width, kernel_size, heads)


@register_model
def sasa50_homogeneous(num_classes: int, width: float = 1.0, kernel_size: int = 7, heads: int = 8) -> ResNet:
    return sasa_resnet(RESNET50_BLOCKS, num_classes, True, width, kernel_size, heads)


@register_model
def vit_tiny(num_classes: int, image_size: int, embed_dim: int = 192, depth: int = 12, heads: int = 3) -> VisionTransformer:
    """ViT-Ti / DeiT-Ti widths (Touvron et al. 2021): 192 wide, 3 heads, 12 blocks."""
    return VisionTransformer(num_classes, image_size, embed_dim, depth, heads)


@register_model
def vit_small(num_classes: int, image_size: int, embed_dim: int = 384, depth: int = 12, heads: int = 6) -> VisionTransformer:
    """ViT-S / DeiT-S widths: 384 wide, 6 heads, 12 blocks."""
    return VisionTransformer(num_classes, image_size, embed_dim, depth, heads)


@register_model
def deit_tiny(num_classes: int, image_size: int, embed_dim: int = 192, depth: int = 12,
              heads: int = 3) -> DistilledVisionTransformer:
    """DeiT-Ti with its distillation token (Touvron et al. 2021): ViT-Ti's widths, a second head."""
    return DistilledVisionTransformer(num_classes, image_size, embed_dim, depth, heads)
