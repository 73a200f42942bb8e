"""AttentionLite: sparse distillation of self-attention vision models and their hardware cost.

The public API (:mod:`attentionlite.api`): :func:`trace`, :func:`simulate`,
:func:`predict_cpu`, :func:`compare`, :func:`sweep`, :func:`explore` and :func:`report`.
"""

from attentionlite.api import compare, explore, parallelism, predict_cpu, report, simulate, sweep, trace
from attentionlite.version import __version__

__all__ = ["__version__", "compare", "explore", "parallelism", "predict_cpu", "report", "simulate", "sweep", "trace"]
