"""Classical filters and pooling on NumPy arrays and image files (NumPy and Pillow only).

- kernels: the named kernels, parsing, the exact integer form;
- padding: TensorFlow's 'same'/'valid' sizes and the border rules;
- reference: cross-correlation by its definition; engine (with plan): the fast 8/16-bit path;
- pooling; channels: Pillow modes and alpha; files: files in, files out (png: the
  streaming PNG encoder for filter outputs);
- matrices: --matrix; gallery: every named kernel's result on one sheet.
"""

from cnncli.filters.channels import FilterOptions, filter_image, pool_image
from cnncli.filters.engine import correlate_image
from cnncli.filters.files import filter_files, pool_files, process_files
from cnncli.filters.kernels import (
    NAMED_KERNELS,
    exact_form,
    format_kernel,
    named_kernel,
    parse_kernel,
    parse_matrix,
)
from cnncli.filters.padding import BORDERS, PADDINGS, pad_amounts
from cnncli.filters.pooling import POOL_OPS, pool
from cnncli.filters.reference import correlate, correlation_steps

__all__ = [
    "BORDERS",
    "PADDINGS",
    "POOL_OPS",
    "NAMED_KERNELS",
    "FilterOptions",
    "correlate",
    "correlate_image",
    "correlation_steps",
    "exact_form",
    "filter_files",
    "filter_image",
    "format_kernel",
    "named_kernel",
    "pad_amounts",
    "parse_kernel",
    "parse_matrix",
    "pool",
    "pool_files",
    "pool_image",
    "process_files",
]
