"""Request bodies sent with a ``Content-Encoding``: gzip and deflate are decoded, within a cap
on the decoded size, before any adapter sees the body; any other coding is refused."""

from __future__ import annotations

import zlib

from bentolite.exceptions import BadInput, PayloadTooLarge, UnsupportedEncoding

#: the codings decoded, by their names in Content-Encoding (x-gzip: RFC 9110's alias)
DECODED = ("gzip", "x-gzip", "deflate")
#: decoded in steps of at most this many bytes, so a small body cannot blow up in one call
_STEP = 1024 * 1024


def codings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding value, in the order they were applied; ``identity``
    dropped. :class:`UnsupportedEncoding` (415) names any coding not decoded here."""
    if not header:
        return []
    names = [name.strip().lower() for name in header.split(",")]
    names = [name for name in names if name and name != "identity"]
    unknown = [name for name in names if name not in DECODED]
    if unknown:
        raise UnsupportedEncoding(
            f"Content-Encoding {', '.join(unknown)} is not supported; send the body as gzip, "
            "deflate or identity (not encoded)"
        )
    return names


def decode(body: bytes, names: list[str], limit: int) -> bytes:
    """``body`` with the codings ``names`` undone (the last applied first); at most ``limit``
    bytes come out of each, else :class:`PayloadTooLarge` (413)."""
    for name in reversed(names):
        body = _inflate(body, name, limit)
    return body


def _inflate(data: bytes, name: str, limit: int) -> bytes:
    out: list[bytes] = []
    size = 0
    pending = data
    try:
        while True:  # gzip allows several members one after the other
            if name == "deflate":
                # RFC 9110 deflate is zlib-wrapped; some clients send a raw deflate stream instead
                wbits = zlib.MAX_WBITS if _looks_like_zlib(pending) else -zlib.MAX_WBITS
            else:
                wbits = zlib.MAX_WBITS | 16
            inflater = zlib.decompressobj(wbits)
            while not inflater.eof:
                chunk = inflater.decompress(pending, min(_STEP, limit - size + 1))
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(
                        f"the {name}-decoded request body is over the server's limit of {limit} bytes",
                        detail="raise it with bentolite serve --max-body-size",
                    )
                out.append(chunk)
                pending = inflater.unconsumed_tail
                if not pending and not chunk:
                    raise BadInput(f"request body ends in the middle of its {name} stream (truncated?)")
            pending = inflater.unused_data
            if name == "deflate" or not pending.strip(b"\0"):
                break
    except zlib.error as exc:
        raise BadInput(f"request body is not valid {name} data", detail=str(exc)) from exc
    if pending.strip(b"\0"):
        raise BadInput(f"request body has data after the end of its {name} stream")
    return b"".join(out)


def _looks_like_zlib(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
