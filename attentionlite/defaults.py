"""The defaults a user meets everywhere (API, CLI, reports), in one light module every layer may import."""

DEFAULT_HARDWARE = "paa-default"  # the accelerator preset compared on unless told
DEFAULT_HETEROGENEOUS = "paa-hetero"  # its heterogeneous counterpart of the same size, set beside it
DEFAULT_DENSITY = 0.10  # a registered student's weight density (the pruning method's initial masks)
DEFAULT_MASK_SEED = 0  # the seed that draws those masks
