"""Showing an image build (and what follows it, a push or a deploy) as it happens.

Two ways, both taking :class:`~bentolite.image_build.BuildEvent` objects one at a time:

* :class:`BuildDisplay` writes to stderr through rich: on a terminal, each step as it starts and
  a live tail of its output; elsewhere (CI logs, pipes), every line as it arrives. The commands
  use it.
* :class:`BuildLog` logs through :mod:`logging` (logger ``bentolite.build``): steps, pushes and
  notes at INFO, each line a step prints at DEBUG.

:func:`default_progress` picks the display on a terminal and the log elsewhere; it is what
library functions that build (``deploy_to_clipper``) use when given no ``on_event``.
"""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from rich.text import Text

    from bentolite.exceptions import BuildError
    from bentolite.image_build import BuildEvent

logger = logging.getLogger("bentolite.build")

_TAIL_LINES = 12


class BuildDisplay:
    """Shows a build on stderr: on a terminal, each step as it starts and a live tail of its
    output; elsewhere (CI logs, pipes), every line as it arrives. Use it as a context manager
    around the build, and as the build's ``on_event``."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self.live = None

    def __enter__(self) -> BuildDisplay:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, transient=True, refresh_per_second=8)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)
            self.live = None

    def _render(self) -> Text:
        from rich.text import Text

        return Text("\n".join(self.tail), style="dim", overflow="ellipsis", no_wrap=True)

    def __call__(self, event: BuildEvent) -> None:
        from rich.markup import escape
        from rich.text import Text

        if event.kind == "step":
            self.tail.clear()
            if self.live is not None:  # one line per step on a terminal
                line = " ".join(event.text.split())
                width = self.console.width - 1
                self.console.print(
                    Text(line if len(line) <= width else line[: width - 3] + "...", style="bold")
                )
            else:
                self.console.print(f"[bold]{escape(event.text)}[/]", soft_wrap=True)
        elif event.kind == "info":
            self.console.print(f"[green]{escape(event.text)}[/]")
        elif self.live is not None:
            self.tail.append(event.text)
        else:
            self.console.print(f"  {escape(event.text)}", style="dim", soft_wrap=True)
        if self.live is not None:
            self.live.update(self._render())

    def show_failure(self, exc: BuildError) -> None:
        """The output of the step that failed, in a panel."""
        from rich.panel import Panel
        from rich.text import Text

        if exc.detail:
            self.console.print(Panel(Text(exc.detail), title="output of the failed step", border_style="red"))


class BuildLog:
    """Logs a build: steps, pushes and notes at INFO, the lines a step prints at DEBUG."""

    def __enter__(self) -> BuildLog:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def __call__(self, event: BuildEvent) -> None:
        if event.kind == "output":
            logger.debug("  %s", event.text)
        else:
            logger.info("%s", " ".join(event.text.split()) if event.kind == "step" else event.text)


Progress = Union[BuildDisplay, BuildLog]


def default_progress() -> Progress:
    """:class:`BuildDisplay` when stderr is a terminal, else :class:`BuildLog`."""
    try:
        from rich.console import Console
    except ImportError:  # rich comes with the build extra; without it, log
        return BuildLog()
    if Console(stderr=True).is_terminal:
        return BuildDisplay()
    return BuildLog()
