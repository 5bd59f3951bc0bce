"""Classical filters and pooling: kernels, cross-correlation, pooling. NumPy and Pillow only."""

from cnncli.filters.engine import (
    BORDERS,
    PADDINGS,
    POOL_OPS,
    correlate,
    correlate_image,
    correlation_steps,
    pad_amounts,
    pool,
)
from cnncli.filters.files import FilterOptions, filter_image, pool_image, process_files
from cnncli.filters.kernels import (
    NAMED_KERNELS,
    exact_form,
    format_kernel,
    named_kernel,
    parse_kernel,
    parse_matrix,
)

__all__ = [
    "BORDERS", "PADDINGS", "POOL_OPS", "NAMED_KERNELS", "FilterOptions", "correlate",
    "correlate_image", "correlation_steps", "exact_form", "filter_image", "format_kernel",
    "named_kernel", "pad_amounts", "parse_kernel", "parse_matrix", "pool", "pool_image",
    "process_files",
]  # fmt: skip
