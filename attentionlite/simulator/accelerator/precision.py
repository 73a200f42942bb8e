"""Which kind of tensor (``[precision]``: weight, activation, softmax, accumulator) each operand of an op is.

* Weights are the weight tensors of convolutions, linear layers, projections and the relative
  embeddings of window logits.
* Softmax tensors are logits and probabilities: the output of window and global attention logits,
  a softmax's input and output, and the probabilities the weighted sum (or ``A V``) reads.  Element-wise
  ops between a product and its softmax (a ViT's scale and mask) carry activations.
* Partial sums are accumulator tensors: what ws/is accumulate in the output buffer, spill to DRAM and read
  back, and what the slices of a split-K GEMM store for the reduction; the final sums are requantised to
  the output's kind on their way out of the array.
* Everything else is an activation: a product's second operand (keys, values), every feature map.
"""

from __future__ import annotations

import math

from attentionlite.simulator.accelerator.hardware import HardwareConfig
from attentionlite.simulator.graph.ops import Op, OpKind

LOGIT_PRODUCERS = frozenset({OpKind.WINDOW_LOGITS, OpKind.ATTENTION_LOGITS})
PROBABILITY_READERS = frozenset({OpKind.WEIGHTED_SUM, OpKind.ATTENTION_VALUES})


def output_kind(op: Op) -> str:
    """The kind of tensor ``op`` writes."""
    return "softmax" if op.kind in LOGIT_PRODUCERS or op.kind is OpKind.SOFTMAX else "activation"


def input_kind(op: Op, index: int) -> str:
    """The kind of tensor ``op`` reads as its input number ``index``."""
    if op.kind is OpKind.SOFTMAX or (op.kind in PROBABILITY_READERS and index == 0):
        return "softmax"
    return "activation"


def output_bytes(op: Op, config: HardwareConfig) -> float:
    return math.prod(op.output_shape) * config.element_bytes(output_kind(op))


def input_bytes(op: Op, config: HardwareConfig, skip: frozenset[int] = frozenset()) -> float:
    """Bytes of ``op``'s input tensors, less the positions in ``skip``."""
    return sum(math.prod(shape) * config.element_bytes(input_kind(op, index))
               for index, shape in enumerate(op.input_shapes) if index not in skip)


def gemm_element_bytes(op: Op, config: HardwareConfig, weight_kind: str) -> dict[str, float]:
    """Bytes per element of a GEMM's input, weight and output operands (``weight_kind``: the B operand's
    kind, ``weight`` for a layer's weights, ``activation`` for a product's second tensor)."""
    return {"input": config.element_bytes(input_kind(op, 0)), "weight": config.element_bytes(weight_kind),
            "output": config.element_bytes(output_kind(op))}
