"""The classifier and its preprocessing, shared by training and serving.

A checkpoint records the architecture spec ({"name": ..., "num_classes": ...})
and the preprocessing; serving rebuilds the same network from them, so no
code is ever unpickled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn


class SmallCNN(nn.Module):
    """Three conv blocks and a linear head: small enough to train on two CPU cores in under a minute."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()

        def block(channels_in: int, channels_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(channels_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )

        self.features = nn.Sequential(block(3, width), block(width, 2 * width), block(2 * width, 4 * width))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(images)).flatten(1))


ARCHITECTURES = {"small-cnn": SmallCNN}


def build_model(spec: dict) -> nn.Module:
    """Build the network a checkpoint's architecture spec names, with fresh weights."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; this code knows {', '.join(sorted(ARCHITECTURES))}")
    return ARCHITECTURES[name](**spec)


def non_finite_tensors(state_dict: dict) -> list[str]:
    """Return the names of the floating-point tensors in state_dict that hold NaN or infinity."""
    return [
        name
        for name, tensor in state_dict.items()
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]


@dataclass(frozen=True)
class Preprocessing:
    """Image-to-input transform: resize to a square, scale to [0, 1], normalise per channel."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def resize(self, image: Image.Image) -> Image.Image:
        """Return the RGB image at the model's input size, which is the model's view before normalisation."""
        return image.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(np.asarray(self.resize(image), dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        return (pixels - mean) / std

    def to_dict(self) -> dict:
        return {"image_size": self.image_size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(int(data["image_size"]), tuple(map(float, data["mean"])), tuple(map(float, data["std"])))


def channel_statistics(images: list[Image.Image], preprocessing_size: int) -> tuple[list[float], list[float]]:
    """Return the per-channel mean and std of images resized to the input size, in [0, 1]."""
    identity = Preprocessing(preprocessing_size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    stacked = torch.stack([identity.to_tensor(image) for image in images])
    mean = stacked.mean(dim=(0, 2, 3))
    std = stacked.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return [round(float(v), 6) for v in mean], [round(float(v), 6) for v in std]
