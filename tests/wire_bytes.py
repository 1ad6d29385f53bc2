"""Little-endian byte strings as Clipper's RPC frames carry them, for hand-built messages."""

from __future__ import annotations

import struct

import numpy as np


def u32(value: int) -> bytes:
    return struct.pack("<I", value)


def u64(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)


def doubles(*values: float) -> bytes:
    return np.array(values, dtype="<f8").tobytes()
