"""YAML bentolite reads and writes: a bundle's ``bentolite.yaml`` (maybe from a stranger's
archive) and bentofiles.

Reading refuses aliases (``*name``): a few kilobytes of nested aliases expand to gigabytes as
soon as anything walks the result (the "billion laughs"), and no file bentolite reads needs
them. Nesting deeper than :data:`MAX_DEPTH` is refused too, before Python's recursion limit is
met. Every error is one line: ``file:line:column: what is wrong``. Writing (:func:`dump`) never
emits aliases, so what bentolite writes it can read back.
"""

from __future__ import annotations

from typing import Any

import yaml

from bentolite.exceptions import BentoliteError

#: how deeply collections may nest in a file bentolite reads
MAX_DEPTH = 64


class _StrictLoader(yaml.SafeLoader):
    """The safe loader, without aliases and with bounded nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted; write the value out", mark
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_DEPTH} levels deep", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _one_line(exc: yaml.YAMLError, source: str) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = exc.problem or exc.context or "parse error"
        if exc.context and exc.problem and exc.context not in problem:
            problem = f"{problem} ({exc.context})"
        return f"{where}: not valid YAML: {' '.join(problem.split())}"
    return f"{source}: not valid YAML: {' '.join(str(exc).split())}"


def compose(text: str, source: str, error: type[BentoliteError]) -> yaml.Node | None:
    """The node tree of ``text`` (``None`` when empty); invalid YAML raises ``error``."""
    try:
        return yaml.compose(text, Loader=_StrictLoader)
    except yaml.YAMLError as exc:
        raise error(_one_line(exc, source)) from None
    except RecursionError:  # a deep structure inside a scalar-free flow the depth count misses
        raise error(f"{source}: not valid YAML: nested too deeply") from None


def load(text: str, source: str, error: type[BentoliteError]) -> Any:
    """The Python value of ``text`` (plain YAML types only); invalid YAML raises ``error``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(_one_line(exc, source)) from None
    except RecursionError:
        raise error(f"{source}: not valid YAML: nested too deeply") from None


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(data: Any) -> str:
    """``data`` as block YAML in the given key order, with every repeated value written out."""
    return yaml.dump(data, Dumper=_NoAliasDumper, sort_keys=False, allow_unicode=True)
