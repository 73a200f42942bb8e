"""The defaults a user meets everywhere (API, CLI, reports), in one light module every layer may import."""

DEFAULT_HARDWARE = "paa-default"  # the accelerator preset compared on unless told
# The report's reference point: paa-default with the attention features on (pipelined folds, fused
# attention, the vector unit beside the array, post-ops in the output path), fair to the students.
DEFAULT_REPORT_HARDWARE = "paa-attention"
DEFAULT_HETEROGENEOUS = "paa-hetero"  # its heterogeneous counterpart of the same size, set beside it
DEFAULT_DENSITY = 0.10  # a registered student's weight density (the pruning method's initial masks)
DEFAULT_MASK_SEED = 0  # the seed that draws those masks
