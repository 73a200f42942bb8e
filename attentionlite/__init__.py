"""AttentionLite: sparse distillation of self-attention vision models and their hardware cost.

The public API (:mod:`attentionlite.api`): :func:`trace`, :func:`simulate`,
:func:`predict_cpu`, :func:`compare`, :func:`sweep` and :func:`report`.
"""

from attentionlite.api import compare, predict_cpu, report, simulate, sweep, trace
from attentionlite.version import __version__

__all__ = ["__version__", "compare", "predict_cpu", "report", "simulate", "sweep", "trace"]
