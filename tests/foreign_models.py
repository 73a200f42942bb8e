"""Vision models the zoo does not have, written the way their papers' reference code writes them, for
checking the tracer on models it was not built around (small widths keep fvcore's forward quick)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class InvertedResidual(nn.Module):
    """MobileNetV2's block (Sandler et al. 2018): 1x1 expand, 3x3 depthwise, 1x1 project, ReLU6."""

    def __init__(self, channels_in: int, channels_out: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = channels_in * expansion
        self.use_residual = stride == 1 and channels_in == channels_out
        self.block = nn.Sequential(
            nn.Conv2d(channels_in, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
            nn.ReLU6(inplace=True),
            nn.Conv2d(hidden, channels_out, 1, bias=False), nn.BatchNorm2d(channels_out),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV2(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(inplace=True))
        self.blocks = nn.Sequential(
            InvertedResidual(16, 16, 1, 1), InvertedResidual(16, 24, 2, 6), InvertedResidual(24, 24, 1, 6),
            InvertedResidual(24, 32, 2, 6),
        )
        self.head = nn.Sequential(nn.Conv2d(32, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU6(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt's block (Liu et al. 2022): 7x7 depthwise, LayerNorm on channels-last, MLP with GELU,
    layer scale, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.expand = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.project = nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(1e-6 * torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(x).permute(0, 2, 3, 1)
        y = self.project(self.act(self.expand(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    def __init__(self, classes: int = 10, channels: int = 32, depth: int = 3) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 4, stride=4)
        self.blocks = nn.Sequential(*(ConvNeXtBlock(channels) for _ in range(depth)))
        self.norm = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.head(self.norm(x.mean((-2, -1))))


class EncoderViT(nn.Module):
    """A small ViT from PyTorch's own ``nn.TransformerEncoderLayer`` (pre-norm, GELU), class token and
    learned positions."""

    def __init__(self, image_size: int = 32, patch: int = 4, width: int = 64, depth: int = 2, heads: int = 4,
                 classes: int = 10) -> None:
        super().__init__()
        self.patches = nn.Conv2d(3, width, patch, stride=patch)
        tokens = (image_size // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.positions = nn.Parameter(torch.zeros(1, tokens, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(width), enable_nested_tensor=False)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patches(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.positions
        return self.head(self.encoder(x)[:, 0])


class WindowAttention(nn.Module):
    """Swin's windowed multi-head self-attention (Liu et al. 2021), written out: tokens split into
    w x w windows, q k^T by hand, a learned relative position bias, softmax, @ v."""

    def __init__(self, width: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads, self.window = heads, window
        self.scale = (width // heads) ** -0.5
        self.qkv = nn.Linear(width, 3 * width)
        self.bias = nn.Parameter(torch.zeros(heads, window * window, window * window))
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, height, width, channels = x.shape
        w = self.window
        windows = x.view(batch, height // w, w, width // w, w, channels).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(-1, w * w, channels)
        count, tokens, _ = windows.shape
        qkv = self.qkv(windows).reshape(count, tokens, 3, self.heads, channels // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = (q * self.scale) @ k.transpose(-2, -1) + self.bias
        out = (attention.softmax(dim=-1) @ v).transpose(1, 2).reshape(count, tokens, channels)
        out = self.proj(out).view(batch, height // w, width // w, w, w, channels).permute(0, 1, 3, 2, 4, 5)
        return out.reshape(batch, height, width, channels)


class SwinBlock(nn.Module):
    def __init__(self, classes: int = 10, width: int = 32, heads: int = 2, window: int = 4) -> None:
        super().__init__()
        self.patches = nn.Conv2d(3, width, 2, stride=2)
        self.norm1 = nn.LayerNorm(width)
        self.attention = WindowAttention(width, heads, window)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patches(x).permute(0, 2, 3, 1)
        x = x + self.attention(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return self.head(x.mean(dim=(1, 2)))


class UNetDecoder(nn.Module):
    """A U-Net-style encoder and up-sampling decoder (Ronneberger et al. 2015): skips concatenated,
    one stage up by interpolation, one by a transposed convolution; SiLU and GroupNorm."""

    def __init__(self, width: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.GroupNorm(2, width), nn.SiLU())
        self.down2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.GroupNorm(2, 2 * width), nn.SiLU())
        self.bottom = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.Sigmoid())
        self.up = nn.ConvTranspose2d(2 * width, 2 * width, 2, stride=2)
        self.fuse2 = nn.Conv2d(4 * width, width, 3, padding=1)
        self.fuse1 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.out = nn.Conv2d(width, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip1 = self.down1(x)
        skip2 = self.down2(F.max_pool2d(skip1, 2))
        bottom = self.bottom(F.max_pool2d(skip2, 2))
        y = F.hardswish(self.fuse2(torch.cat([self.up(bottom), skip2], dim=1)))
        y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        y = torch.tanh(self.fuse1(torch.cat([y, skip1], dim=1)))
        return self.out(y)


class SdpaViT(nn.Module):
    """A ViT block written as timm writes it: fused qkv, ``F.scaled_dot_product_attention``."""

    def __init__(self, width: int = 48, heads: int = 3, patch: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.heads = heads
        self.patches = nn.Conv2d(3, width, patch, stride=patch)
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patches(x).flatten(2).transpose(1, 2)
        batch, tokens, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, tokens, width)
        x = x + self.proj(attended)
        return self.head(x.mean(1))


class MultiheadViT(nn.Module):
    """Attention through ``nn.MultiheadAttention`` (with its default need_weights=True)."""

    def __init__(self, width: int = 32, heads: int = 4, patch: int = 4, classes: int = 10) -> None:
        super().__init__()
        self.patches = nn.Conv2d(3, width, patch, stride=patch)
        self.attention = nn.MultiheadAttention(width, heads, batch_first=True)
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patches(x).flatten(2).transpose(1, 2)
        attended, _ = self.attention(x, x, x)
        return self.head((x + attended).mean(1))
