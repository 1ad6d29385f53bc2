"""click's ``CliRunner`` with stderr kept apart from stdout on every click version the suite meets.

click 8.2 and later always keep ``result.stderr`` apart; click 8.1 (the newest for Python 3.9)
mixes it into ``result.stdout`` unless told not to, and then ``result.output`` is stdout alone.
"""

from __future__ import annotations

import inspect
from typing import Any

from click import testing

_HAS_MIX_STDERR = "mix_stderr" in inspect.signature(testing.CliRunner.__init__).parameters


class CliRunner(testing.CliRunner):
    def __init__(self, **kwargs: Any) -> None:
        if _HAS_MIX_STDERR:
            kwargs.setdefault("mix_stderr", False)
        super().__init__(**kwargs)
