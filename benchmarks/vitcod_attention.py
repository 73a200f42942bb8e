"""ViTCoD's attention speed-up at 90% attention sparsity, simulated on ``vitcod-like``, beside the published one.

The workload is the attention of DeiT-Tiny, -Small and -Base at 224 px, as ViTCoD evaluates them: 12
blocks of 197 tokens (196 patches and the class token), 3, 6 and 12 heads of 64 channels, batch 1.
Each block is this package's ViT attention module (a fused q, k, v projection, scaled dot products,
the output projection) traced as any model is.  Its fixed mask keeps ceil(0.1 x 197^2) = 3,881 of the
38,809 entries of every head (90% sparsity): ``--global-tokens`` key columns that every query keeps
(ViTCoD's denser part: the columns of global tokens), the class token's row, and the rest drawn at
random, seeded, among the other entries (15 global tokens, 2,955 entries, are about as many as the
budget leaves room for beside the class row).  The denser and the sparser engine pack their logits onto
their PE lines whole, as ViTCoD's simulator counts them, while the dense array loses a quarter of its
rows to 197 queries on 64 (4 folds of 64 rows for 197).  How many global tokens a trained DeiT's masks hold is not
something this benchmark can measure (no DeiT trained at 224 px here), so the table gives several.

Per model and global-token count:
- the attention's latency (Q K^T, softmax, A V of all 12 blocks) with the mask on ViTCoD's split denser
  and sparser engines, against the same attention computed dense on the same array (``vitcod-like``
  with ``attention.split_sparse`` off).  ViTCoD's simulator counts its engines' cycles as work over PEs,
  with no fill or drain, and ``vitcod-like`` pipelines its dense array's folds (``array.overlap_folds``)
  to count the same way: the speed-up this benchmark leads with.  Beside it, against the dense array
  with SCALE-Sim's fold timing (fill and drain in every fold, ``array.overlap_folds`` off);
- the speed-up of the whole attention module (the q, k, v and output projections included: what
  Amdahl leaves), and the attention's energy saved;
- against this package's CPU model of a Xeon 8380 (``cpu-xeon-8380``) running the dense attention.

ViTCoD's published figures (You et al., HPCA 2023, abstract): at 90% attention sparsity, 235.3x over a
CPU, 10.1x over SpAtten and 6.8x over Sanger.  What differs, stated:
- SpAtten and Sanger are accelerators this package does not model, so only the dense-array and CPU
  references are simulated here; the dense array is the nearest stand-in for a design without
  ViTCoD's split engines;
- ViTCoD's CPU baseline is its own machine and software, not this roofline's Xeon 8380;
- ViTCoD's auto-encoder compresses Q and K on their way from DRAM; not modelled, so a DRAM-bound
  attention here moves more bytes than ViTCoD's;
- the masks are synthetic (above), not ViTCoD's DeiT masks.

    python benchmarks/vitcod_attention.py [--global-tokens 0 5 10 15] [--sparsity 0.9]
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from attentionlite import api
from attentionlite.model.nets.vit import Attention, polarise
from attentionlite.model.training.attention_sparsity import kept_per_head
from attentionlite.simulator.graph.ops import OpKind
from attentionlite.simulator.graph.tracing import trace_model

TOKENS, DEPTH, HEAD_WIDTH = 197, 12, 64
MODELS = {"DeiT-Tiny": 3, "DeiT-Small": 6, "DeiT-Base": 12}  # heads
ATTENTION_KINDS = {OpKind.ATTENTION_LOGITS.value, OpKind.SOFTMAX.value, OpKind.ATTENTION_VALUES.value}
PUBLISHED = "235.3x over CPU, 10.1x over SpAtten, 6.8x over Sanger (ViTCoD, HPCA 2023, at 90%)"


def polarised_mask(heads: int, global_tokens: int, sparsity: float, generator: torch.Generator) -> torch.Tensor:
    """(heads, T, T): per head, ``global_tokens`` key columns kept whole (keys 1.. after the class token),
    the class token's row, and random entries to ceil((1 - s) T^2) kept."""
    kept = kept_per_head(TOKENS, sparsity)
    mask = torch.zeros(heads, TOKENS, TOKENS, dtype=torch.bool)
    mask[:, :, 1:1 + global_tokens] = True
    mask[:, 0, :] = True
    for head in mask:
        if int(head.sum()) > kept:
            raise SystemExit(f"{global_tokens} global tokens keep {int(head.sum())} entries of a head, more than the "
                             f"{kept} that sparsity {sparsity:g} keeps; expected fewer global tokens")
        free = (~head).flatten().nonzero().squeeze(1)
        chosen = free[torch.randperm(len(free), generator=generator)[:kept - int(head.sum())]]
        head.view(-1)[chosen] = True
    return mask


def attention_stack(heads: int, global_tokens: int | None, sparsity: float, seed: int) -> nn.Module:
    """DEPTH attention modules one after another; each with its own mask, or dense (None)."""
    generator = torch.Generator().manual_seed(seed)
    blocks = [Attention(heads * HEAD_WIDTH, heads) for _ in range(DEPTH)]
    if global_tokens is not None:
        for block in blocks:
            block.attn_mask = polarised_mask(heads, global_tokens, sparsity, generator)
    return nn.Sequential(*blocks).eval()


def accelerator_ms(model: nn.Module, width: int, hardware, **overrides) -> tuple[float, float, float]:
    """(attention-core ms, whole-module ms, attention-core uJ) of one image on the accelerator."""
    graph = trace_model(model, input_shape=(1, TOKENS, width))
    result = api.simulate(graph, hardware, **overrides)
    clock_hz = result.hardware["clock_mhz"] * 1e6
    core = [row for row in result.rows if row.kind in ATTENTION_KINDS]
    core_cycles = sum(row.compute_cycles + row.stall_cycles for row in core)
    energy_uj = sum(row.energy.total for row in core) / 1e6
    return core_cycles / clock_hz * 1e3, result.totals.latency_s * 1e3, energy_uj


def cpu_ms(model: nn.Module, width: int, cpu: str) -> float:
    graph = trace_model(model, input_shape=(1, TOKENS, width))
    rows = api.predict_cpu(graph, cpu).result.rows
    return sum(row.seconds for row in rows if row.kind in ATTENTION_KINDS) * 1e3


DENSE = {"attention.split_sparse": False}
SCALESIM_FOLDS = {"array.overlap_folds": False}


def main() -> None:
    args = _parse_args()
    print(f"Attention sparsity {args.sparsity:g}, {DEPTH} blocks of {TOKENS} tokens, batch 1, "
          f"hardware {args.hardware}; CPU {args.cpu} (dense).  Published: {PUBLISHED}.\n")
    print("| model | global tokens | kept on the denser engine | dense attention (ms): pipelined folds "
          "/ SCALE-Sim folds | ViTCoD mode (ms) | speed-up vs pipelined | vs SCALE-Sim folds "
          "| module speed-up | attention energy saved | CPU dense (ms) | speed-up over CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, heads in MODELS.items():
        width = heads * HEAD_WIDTH
        dense = attention_stack(heads, None, args.sparsity, args.seed)
        pipelined, pipelined_module, dense_uj = accelerator_ms(dense, width, args.hardware, **DENSE)
        folds, _, _ = accelerator_ms(dense, width, args.hardware, **DENSE | SCALESIM_FOLDS)
        cpu = cpu_ms(dense, width, args.cpu)
        for global_tokens in args.global_tokens:
            sparse = attention_stack(heads, global_tokens, args.sparsity, args.seed)
            core, module, uj = accelerator_ms(sparse, width, args.hardware)
            print(f"| {name} | {global_tokens} | {_dense_share(sparse):.0%} | {pipelined:.3f} / {folds:.3f} "
                  f"| {core:.3f} | {pipelined / core:.2f}x | {folds / core:.2f}x | {pipelined_module / module:.2f}x "
                  f"| {1 - uj / dense_uj:.0%} | {cpu:.2f} | {cpu / core:.1f}x |")


def _dense_share(model: nn.Module) -> float:
    """Share of the kept entries in global-token columns (what runs on the denser engine)."""
    kept = in_columns = 0
    for block in model:
        _, sparse = polarise(block.attn_mask)
        kept += int(block.attn_mask.sum())
        in_columns += int(block.attn_mask.sum()) - int(sparse.sum())
    return in_columns / kept


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--global-tokens", type=int, nargs="+", default=[0, 5, 10, 15],
                        help="key columns every query keeps (ViTCoD's denser part)")
    parser.add_argument("--sparsity", type=float, default=0.9, help="attention sparsity of every head")
    parser.add_argument("--hardware", default="vitcod-like", help="accelerator preset or TOML")
    parser.add_argument("--cpu", default="cpu-xeon-8380", help="CPU preset or TOML for the dense reference")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random part of the masks")
    return parser.parse_args()


if __name__ == "__main__":
    main()
