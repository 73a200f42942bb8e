"""AttentionLite: sparse distillation of self-attention vision models and their hardware cost."""

__version__ = "0.1.0"
