"""``FairStart``: the requests read in one turn of the event loop start oldest-waiting first.

The event loop reads its connections in the order the kernel's ``epoll`` reports them, and for
a level-triggered socket (uvloop's and asyncio's) that order sticks: a socket reported in one
turn goes back to the end of the ready list as it is reported, and keeps that place when its
next request arrives. A connection that once missed a turn (its next request arrived just after
the loop looked) is then reported after every other, in every turn: its request waits for the
whole turn it missed and then for all of the next. Under steady load a few connections are
stuck in that place and take most of the slow answers (twice the others' latency), which sets
the server's p99 and starves those clients.

:class:`FairStart` undoes that order. The protocol notes, for each connection, the turn number
at which it became ready for its next request (when it was opened, or when its last answer was
written: :meth:`FairStart.ready`), and hands each request's start to :meth:`FairStart.start`
instead of starting it at once. At the end of the turn, the requests read in it start in the
order their connections became ready: the one that waited longest first, as a queue would have
served them.

A request starts one loop iteration later than without it (one more poll of the sockets, which
finds nothing new or the next requests); the order changes only among the requests of one turn.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
from operator import itemgetter
from typing import Any, Callable

#: the sequence of readiness: a connection's number says when it became ready for a request
_READY = itertools.count()
_FIRST = itemgetter(0)


class FairStart:
    """The request starts of one server's event loop, made in the order their connections became
    ready (see the module docstring). One per server: its protocols share it."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        #: (readiness, start, arguments) of each request read since the last flush
        self._pending: list[tuple[int, Callable[..., Any], tuple[Any, ...]]] = []

    #: a number for "now" in the order of readiness: the lower, the longer it has waited (a
    #: partial of the builtin ``next``: a call of it runs no Python code)
    ready: Callable[[], int] = functools.partial(next, _READY)

    def start(
        self, loop: asyncio.AbstractEventLoop, readiness: int, start: Callable[..., Any], *args: Any
    ) -> None:
        """Call ``start(*args)`` on ``loop`` at the end of this turn, in the order of ``readiness``."""
        pending = self._pending
        if not pending:
            self._loop = loop
            loop.call_soon(self._flush)
        elif loop is not self._loop:  # another loop (not under one server): no order to keep
            loop.call_soon(start, *args)
            return
        pending.append((readiness, start, args))

    def _flush(self) -> None:
        pending = self._pending
        self._pending = []
        if len(pending) > 1:
            pending.sort(key=_FIRST)
        entries = iter(pending)
        try:
            for _, start, args in entries:
                start(*args)
        except BaseException:
            # the loop reports the error; the requests after this one still start, in order
            rest = list(entries)
            if rest:
                if not self._pending and self._loop is not None:
                    self._loop.call_soon(self._flush)
                self._pending[:0] = rest
            raise
