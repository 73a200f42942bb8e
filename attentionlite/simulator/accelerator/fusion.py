"""What never crosses DRAM between neighbouring ops on one core, and the vector work the array hides.

A tensor an op hands to the next op on the same core (``same_core``: the
schedule runs them back to back there with the whole tensor) stays on chip in
three ways:

* **whole**: it fits half of the output buffer and half of the input buffer,
  so the consumer reads it where the producer left it;
* **fused local attention** (``[attention] fused``): window logits, softmax
  and weighted sum run block by block (one head's b x b query block under the
  blocked mapping, one row fold of a head's queries under the gathered one),
  so only one block's logits need to be held, in half the output buffer, and
  its probabilities in half the input buffer.  A layer whose block does not
  fit runs unfused, its logits and probabilities through DRAM.  This is
  FLAT's fusion (Kao et al., "FLAT: An Optimized Dataflow for Mitigating
  Attention Bottlenecks", ASPLOS 2023), the tiling FlashAttention (Dao et al.,
  NeurIPS 2022) uses on GPUs, applied to SASA's windows;
* **the array's output path** (``[array] fuse_post_ops``): a batch norm (a
  per-channel scale and shift), a ReLU (or ReLU6, hardtanh) or a residual add
  right after an array op (or after another such op) is applied to the
  outputs as they drain, by a multiplier, an adder and a comparator per
  array column, as TPU v1's activation unit (Jouppi et al., ISCA 2017) and
  NVDLA's single-data-point processor (BN, bias, ReLU, element-wise add on
  the convolution output stream) do.  The tensor streams through, so it
  needs no capacity, and the post-op costs no vector cycles (its element
  operations are still charged the vector unit's energy).  A residual add
  still loads its other operand.

In each case the producer must be the consumer's own input and, for the
producer's store to be dropped, its only consumer.  Nothing is handed over
across pipeline stages (a stage is one core) or under ``split`` (each core
holds part of every tensor); pipeline stages are cut on unfused cycles.

With ``[vector] overlaps_array`` the vector unit works beside the array:
under fused attention the softmax of one block runs while the array computes
the logits of the next and the weighted sum of the last, so a layer of n
blocks with array cycles A (its logits' and weighted sum's GEMMs) and vector
cycles V (the softmax, the relative-logit adds, the stem's value mixing)
takes ``max(A, V) + min(A, V) / n``: the slower unit's work plus one block
of the other's, the fill and drain of a two-stage pipeline.  (The true
three-step order, logits, softmax, weighted sum, ends sooner when the array
is the slower unit, by up to one block's softmax less its weighted sum: the
formula is an upper bound.)  The softmax op is given what is left of that
after its neighbours' own cycles, so the layer's total is the formula's, or
those cycles where they are longer: the relative-logit adds and the value
mixing stay in the logits' and weighted sum's own cycles.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from attentionlite.simulator.accelerator.attention import fused_blocks, own_vector_cycles, require_window
from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.accelerator.memory import OnChip, OpWork, on_chip_vector_work
from attentionlite.simulator.accelerator.precision import output_bytes
from attentionlite.simulator.graph.graph import OpGraph
from attentionlite.simulator.graph.ops import Op, OpKind

# ACT functions a comparator per column applies as outputs drain: clamps from below (and above)
OUTPUT_PATH_FUNCTIONS = frozenset({"relu", "relu6", "hardtanh"})

# A local-attention layer's ops in order; fused attention keeps the hand-overs between them on chip
FUSED_LAYER = (OpKind.WINDOW_LOGITS, OpKind.SOFTMAX, OpKind.WEIGHTED_SUM)
FUSED_ATTENTION_EDGES = frozenset(zip(FUSED_LAYER, FUSED_LAYER[1:]))


def on_chip_reuse(ops: Sequence[Op], graph: OpGraph | Sequence[Op], same_core: Sequence[bool],
                  designs: Sequence[HardwareConfig]) -> list[OnChip]:
    """Per op, what never crosses DRAM because the neighbouring op on the same core keeps it (module doc).

    ``same_core[i]`` says op i runs right after op i - 1 on the same core with
    the whole tensor (false across pipeline stages and in tile-split);
    ``designs[i]`` is the core design op i runs on.  Without a graph (a bare
    list of ops) nothing is assumed to connect.
    """
    if not isinstance(graph, OpGraph):
        return [OnChip() for _ in ops]
    inputs: list[set[int]] = [set() for _ in ops]
    outputs = [False] * len(ops)
    output_path = [False] * len(ops)
    for i in range(1, len(ops)):
        producer, consumer, config = ops[i - 1], ops[i], designs[i]
        consumers = graph.consumers(producer.name)
        if not same_core[i] or consumer.name not in consumers or producer.output_shape not in consumer.input_shapes:
            continue
        output_path[i] = (len(consumers) == 1 and config.array.fuse_post_ops and _is_post_op(consumer)
                          and (producer.kind.uses_array or output_path[i - 1]))
        if output_path[i] or _fits_whole(producer, config) or _fused_attention_edge(producer, consumer, config):
            inputs[i].add(consumer.input_shapes.index(producer.output_shape))
            outputs[i - 1] = consumers == [consumer.name]
    return [OnChip(frozenset(kept), output, streamed)
            for kept, output, streamed in zip(inputs, outputs, output_path)]


def _hand_over_capacity(config: HardwareConfig) -> int:
    """Bytes a producer can leave for its consumer: what fits half the output and half the input buffer."""
    return min(config.half_buffer_bytes("output"), config.half_buffer_bytes("input"))


def _fits_whole(producer: Op, config: HardwareConfig) -> bool:
    return output_bytes(producer, config) <= _hand_over_capacity(config)


def _is_post_op(op: Op) -> bool:
    """A batch norm, a clamping activation or a residual add: what an output path of multipliers, adders
    and comparators applies element by element."""
    attrs = dict(op.attrs)
    if op.kind is OpKind.NORM:
        return "norm" not in attrs  # a batch norm; layer and group norms need their statistics first
    if op.kind is OpKind.ACT:
        return attrs.get("function") in OUTPUT_PATH_FUNCTIONS
    return op.kind is OpKind.ADD


def _fused_attention_edge(producer: Op, consumer: Op, config: HardwareConfig) -> bool:
    """Logits to softmax, or softmax to weighted sum, under fused attention, with one block fitting."""
    if not config.attention.fused or (producer.kind, consumer.kind) not in FUSED_ATTENTION_EDGES:
        return False
    window = producer.window or consumer.window
    if window is None:
        return False
    _, block_words = fused_blocks(window, config)
    return block_words * config.element_bytes("softmax") <= _hand_over_capacity(config)


def overlap_softmax(ops: Sequence[Op], works: Sequence[OpWork], kept: Sequence[OnChip],
                    designs: Sequence[HardwareConfig]) -> list[OpWork]:
    """``works`` with each fused softmax's cycles cut to what the array does not hide (module doc)."""
    overlapped = list(works)
    for i in range(1, len(ops) - 1):
        if _runs_beside_the_array(ops, kept, designs, i):
            overlapped[i] = _exposed_softmax(ops[i - 1:i + 2], works[i - 1:i + 2], designs[i])
    return overlapped


def _runs_beside_the_array(ops: Sequence[Op], kept: Sequence[OnChip], designs: Sequence[HardwareConfig],
                           i: int) -> bool:
    """Op i is a softmax between the logits and weighted sum it is fused with, on a vector unit beside the array."""
    kinds = tuple(op.kind for op in ops[i - 1:i + 2])
    fused = bool(kept[i].inputs) and kept[i].output and kept[i - 1].output
    return designs[i].vector.overlaps_array and fused and kinds == FUSED_LAYER


def _exposed_softmax(ops: Sequence[Op], works: Sequence[OpWork], config: HardwareConfig) -> OpWork:
    """The softmax's work with its cycles cut to the layer's pipelined time less its neighbours' cycles."""
    logits, _, weighted_sum = ops
    own_vector = sum(own_vector_cycles(op, config) for op in (logits, weighted_sum))
    logits_cycles, softmax_cycles, weighted_sum_cycles = (int(work.tiles.compute.sum()) for work in works)
    array = logits_cycles + weighted_sum_cycles - own_vector
    vector = softmax_cycles + own_vector
    blocks, _ = fused_blocks(require_window(logits), config)
    pipelined = max(array, vector) + math.ceil(min(array, vector) / blocks)
    exposed = max(0, pipelined - logits_cycles - weighted_sum_cycles)
    return replace(works[1], parts=on_chip_vector_work(exposed, 0, len(works[1].parts)).parts)
