"""CSV text built by Arrow kernels, for the writers that need exact bytes fast (ml.validate,
ml.score): quoting a column of text, and writing a column of finished lines as it lies in memory.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def quotes_doubled(text: pa.Array) -> pa.Array:
    """Text with each quote doubled, as CSV quoting needs (the column itself when it has none)."""
    if pc.any(pc.match_substring(text, '"')).as_py():
        return pc.replace_substring(text, '"', '""')
    return text


def quoted(text: pa.Array) -> pa.Array:
    """Each text in quotes, its own quotes doubled."""
    return pc.binary_join_element_wise('"', quotes_doubled(text), '"', "")


def minimally_quoted(text: pa.Array) -> pa.Array:
    """Texts holding a comma, a quote or a line end quoted, their quotes doubled, the others as
    they are: the csv module's QUOTE_MINIMAL, which pandas' `to_csv` uses (with "\\n" lines)."""
    special = pc.match_substring_regex(text, r'[",\n]')
    if not pc.any(special).as_py():
        return text
    return pc.if_else(special, quoted(text), text)


def write_lines(handle: BinaryIO, lines: pa.StringArray) -> None:
    """Write text cells back to back (lines that end in a newline, say), as one write of the
    bytes they occupy in the array's buffer: consecutive, so no copy is made."""
    if len(lines):
        _, offsets, data = lines.buffers()
        bounds = np.frombuffer(offsets, np.int32, len(lines) + 1, 4 * lines.offset)
        handle.write(data[int(bounds[0]) : int(bounds[-1])])
