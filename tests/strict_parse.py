"""A strict JSON parser for the tests: RFC 8259 only, so ``NaN``, ``Infinity`` and ``-Infinity``
(which Python's ``json`` reads by default) are refused, as any strict client refuses them."""

from __future__ import annotations

import json
from typing import Any


def strict_loads(data: bytes | str) -> Any:
    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, parse_constant=refuse)
