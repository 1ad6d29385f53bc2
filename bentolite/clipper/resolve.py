"""``resolve_frontend``: the address of the query frontend a Clipper container connects to.

The frontend's host is resolved for every session, as its address may change between sessions.
A name that does not resolve yet (a Kubernetes service still being created) is retried every
``RESOLVE_RETRY`` seconds; that is logged once, and once more when the name resolves.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

# Logged under the runtime's name: these lines belong to the container's log.
logger = logging.getLogger("bentolite.clipper.runtime")

#: seconds between attempts to resolve a frontend host name that does not resolve (yet)
RESOLVE_RETRY = 0.5


def resolve_frontend(host: str, stop: threading.Event) -> str | None:
    """The IPv4 address of ``host``, retried until it resolves; None once ``stop`` is set."""
    failing_since: float | None = None
    while not stop.is_set():
        try:
            ip = socket.gethostbyname(host)
        except OSError as exc:
            if failing_since is None:
                failing_since = time.monotonic()
                logger.warning(
                    "cannot resolve Clipper host %r (%s); retrying every %.1f s", host, exc, RESOLVE_RETRY
                )
            stop.wait(RESOLVE_RETRY)
            continue
        if failing_since is not None:
            logger.info(
                "resolved Clipper host %r to %s after %.1f s", host, ip, time.monotonic() - failing_since
            )
        return ip
    return None
