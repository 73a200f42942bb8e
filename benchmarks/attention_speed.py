"""LocalSelfAttention (shifted views) against the well-known ``F.unfold`` version: time and memory.

For each stage width of SASA-ResNet-26 on 32x32 inputs (64 channels at 32x32,
128 at 16x16, 256 at 8x8, 512 at 4x4: the resolution most of each stage's
attention layers run at), batch 64, k=7, 8 heads, one forward+backward of the
attention layer is timed (best of a few) and its memory measured, each in a
fresh process: the peak resident memory above the level just before the pass.
The unfold version (as in the public SASA reimplementations) materialises k*k
copies of keys and values, (B, C, k*k, H*W), and keeps them for backward; it is
given the same masking and relative embeddings, and its output is checked
against the layer's.

    nice python benchmarks/attention_speed.py [--batch 64] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time

import torch
import torch.nn.functional as F

from attentionlite.model.nets.layers import LocalSelfAttention

# (channels, side) of SASA-ResNet-26's four stages at 32x32 input.
STAGES = ((64, 32), (128, 16), (256, 8), (512, 4))
KERNEL_SIZE = 7
HEADS = 8


def unfold_attention(layer: LocalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The same layer computed by unfolding keys and values into k*k copies (odd k)."""
    batch, _, height, width = x.shape
    heads, d, k = layer.heads, layer.head_channels, layer.kernel_size
    queries = layer.query(x).view(batch, heads, d, 1, height * width)
    keys = F.unfold(layer.key(x), k, padding=k // 2).view(batch, heads, d, k * k, height * width)
    values = F.unfold(layer.value(x), k, padding=k // 2).view(batch, heads, d, k * k, height * width)
    keys = keys + _relative_embedding(layer)  # (B, G, d, k*k, H*W)
    logits = (queries * keys).sum(dim=2)  # (B, G, k*k, H*W)
    mask = F.unfold(x.new_ones(1, 1, height, width), k, padding=k // 2)[0] == 0  # (k*k, H*W): padding
    attention = logits.masked_fill(mask, float("-inf")).softmax(dim=2)
    out = (attention.unsqueeze(2) * values).sum(dim=3)  # (B, G, d, H*W)
    return out.view(batch, heads * d, height, width)


def _relative_embedding(layer: LocalSelfAttention) -> torch.Tensor:
    """r for every window position, (G, d, k*k, 1): row halves then column halves of each head."""
    heads, half, k = layer.heads, layer.head_channels // 2, layer.kernel_size
    rows = layer.rel_rows.view(heads, half, k, 1).expand(heads, half, k, k)
    cols = layer.rel_cols.view(heads, half, 1, k).expand(heads, half, k, k)
    return torch.cat([rows, cols], dim=1).flatten(2).unsqueeze(-1)


def _measure(impl: str, channels: int, side: int, batch: int, repeats: int, threads: int, queue) -> None:
    """Child process: best forward+backward seconds and peak memory (MiB) above the pre-pass level."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layer = LocalSelfAttention(channels, channels, KERNEL_SIZE, HEADS)
    x = torch.randn(batch, channels, side, side)
    run = layer if impl == "shifted" else (lambda inputs: unfold_attention(layer, inputs))
    before = _resident_mib()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(x).square().sum().backward()
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((best, peak - before))


def _resident_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def measure(impl: str, channels: int, side: int, batch: int, repeats: int, threads: int) -> tuple[float, float]:
    """Run :func:`_measure` in a fresh process so one run's peak memory does not hide another's."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(impl, channels, side, batch, repeats, threads, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def check_agreement(channels: int, side: int) -> float:
    """Largest absolute difference between the two implementations on a small batch."""
    torch.manual_seed(0)
    layer = LocalSelfAttention(channels, channels, KERNEL_SIZE, HEADS)
    x = torch.randn(2, channels, side, side)
    with torch.no_grad():
        return (layer(x) - unfold_attention(layer, x)).abs().max().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch intra-op threads")
    args = parser.parse_args()
    print(f"forward+backward, batch {args.batch}, k={KERNEL_SIZE}, {HEADS} heads, "
          f"{args.threads} threads, best of {args.repeats}")
    print(f"{'C':>4} {'HxW':>6} | {'unfold s':>9} {'ours s':>8} {'speed-up':>8} | "
          f"{'unfold MiB':>10} {'ours MiB':>9} {'saving':>7} | max |diff|")
    for channels, side in STAGES:
        unfold_s, unfold_mib = measure("unfold", channels, side, args.batch, args.repeats, args.threads)
        ours_s, ours_mib = measure("shifted", channels, side, args.batch, args.repeats, args.threads)
        print(f"{channels:>4} {side:>3}x{side:<2} | {unfold_s:>9.3f} {ours_s:>8.3f} {unfold_s / ours_s:>7.1f}x | "
              f"{unfold_mib:>10.0f} {ours_mib:>9.0f} {unfold_mib / ours_mib:>6.1f}x | "
              f"{check_agreement(channels, side):.1e}", flush=True)


if __name__ == "__main__":
    main()
