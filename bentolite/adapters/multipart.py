"""A bounded ``multipart/form-data`` reader (RFC 7578 over RFC 2046).

Every scan is a C-level ``bytes.find`` that never looks at a byte twice, so reading a body costs
time linear in its size however it is cut into parts; the number of parts and the size of each
part's header block are capped (:class:`FormLimits`). A body without its closing boundary, a
part without a header terminator and a part that is itself multipart are refused, never handed
to the function as a corrupted or empty file.
"""

from __future__ import annotations

import base64
import binascii
import quopri
from collections.abc import Iterator, Mapping
from urllib.parse import unquote

import attrs

from bentolite.exceptions import BadInput, PartHeaderTooLarge, TooManyParts

DEFAULT_MAX_PARTS = 64
DEFAULT_MAX_PART_HEADER_SIZE = 8 * 1024
#: RFC 2046 section 5.1.1: a boundary is 1 to 70 characters
MAX_BOUNDARY_LENGTH = 70


@attrs.frozen
class FormLimits:
    """How much of a multipart body the server reads: at most ``max_parts`` parts, and at
    most ``max_part_header_size`` bytes of headers in each."""

    max_parts: int = DEFAULT_MAX_PARTS
    max_part_header_size: int = DEFAULT_MAX_PART_HEADER_SIZE


@attrs.frozen
class Part:
    """One part of a form: its headers (lower-cased names) and its decoded content."""

    headers: Mapping[str, str]
    data: bytes

    @property
    def name(self) -> str | None:
        return _disposition(self.headers).get("name")

    @property
    def filename(self) -> str | None:
        return _disposition(self.headers).get("filename")


def first_file(body: bytes, boundary: str, limits: FormLimits = FormLimits()) -> Part | None:
    """The first part with a file name, else the first part (None for a form without parts).

    The whole body is checked (part count, header sizes, closing boundary) before anything is
    returned; only the parts returned are copied out of it.
    """
    chosen: Part | None = None
    first: Part | None = None
    for index, (headers, start, end) in enumerate(_scan(body, boundary, limits)):
        if chosen is not None:
            continue  # keep checking the rest of the body, without copying it
        _check_not_nested(headers, index)
        if first is None or "filename" in _disposition(headers):
            part = Part(headers, _decode(headers, body[start:end], index))
            if first is None:
                first = part
            if part.filename is not None:
                chosen = part
    return chosen or first


def _scan(body: bytes, boundary: str, limits: FormLimits) -> Iterator[tuple[dict[str, str], int, int]]:
    """Each part's headers and the span of its content in ``body``."""
    if not 0 < len(boundary) <= MAX_BOUNDARY_LENGTH:
        raise BadInput(
            f"multipart boundary of {len(boundary)} characters; a boundary has 1 to {MAX_BOUNDARY_LENGTH}"
        )
    dash = b"--" + boundary.encode("latin-1")
    delimiter = b"\r\n" + dash
    if body.startswith(dash):
        pos = len(dash)
    else:  # a preamble before the first boundary is allowed, and ignored
        found = body.find(delimiter)
        if found < 0:
            raise BadInput("multipart body holds no boundary line of the boundary its content type names")
        pos = found + len(delimiter)
    count = 0
    while True:
        if body.startswith(b"--", pos):  # the closing delimiter; an epilogue is ignored
            return
        line_end = body.find(b"\r\n", pos, pos + 256)
        if line_end < 0 or body[pos:line_end].strip(b" \t"):
            raise _truncated() if line_end < 0 and len(body) - pos < 256 else _bad_boundary_line()
        count += 1
        if count > limits.max_parts:
            raise TooManyParts(
                f"multipart body holds more than {limits.max_parts} parts",
                detail="raise the limit with bentolite serve --max-parts",
            )
        start = line_end + 2
        if body.startswith(b"\r\n", start):  # a part without headers
            raw_headers, data_start = b"", start + 2
        else:
            cap = limits.max_part_header_size
            head_end = body.find(b"\r\n\r\n", start, start + cap + 4)
            if head_end < 0:
                if len(body) - start <= cap + 4:
                    raise _truncated()
                raise PartHeaderTooLarge(
                    f"part {count} of the multipart body has more than {cap} bytes of headers",
                    detail="raise the limit with bentolite serve --max-part-header-size",
                )
            raw_headers, data_start = body[start:head_end], head_end + 4
        end = body.find(delimiter, data_start)
        if end < 0:
            raise _truncated()
        yield _parse_headers(raw_headers, count), data_start, end
        pos = end + len(delimiter)


def _truncated() -> BadInput:
    return BadInput("multipart body ends before its closing boundary (truncated?)")


def _bad_boundary_line() -> BadInput:
    return BadInput("multipart body has a boundary line followed by other text")


def _parse_headers(raw: bytes, index: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not raw:
        return headers
    for line in raw.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep or not name.strip() or name != name.strip():
            shown = line[:60].decode("latin-1")
            raise BadInput(f"part {index} of the multipart body has a malformed header line {shown!r}")
        headers[name.decode("latin-1").lower()] = value.strip().decode("utf-8", errors="replace")
    return headers


def _check_not_nested(headers: Mapping[str, str], index: int) -> None:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media.startswith("multipart/"):
        raise BadInput(
            f"part {index + 1} of the multipart body is itself {media}; nested multipart is not accepted",
            detail="send each file as its own part of one multipart/form-data body",
        )


def _decode(headers: Mapping[str, str], data: bytes, index: int) -> bytes:
    encoding = headers.get("content-transfer-encoding", "binary").strip().lower()
    if encoding in ("binary", "7bit", "8bit"):
        return data
    try:
        if encoding == "base64":
            return base64.b64decode(b"".join(data.split()), validate=True)
        if encoding == "quoted-printable":
            return quopri.decodestring(data)
    except (binascii.Error, ValueError) as exc:
        raise BadInput(
            f"part {index + 1} of the multipart body is not valid {encoding}", detail=str(exc)
        ) from exc
    raise BadInput(
        f"part {index + 1} of the multipart body has Content-Transfer-Encoding {encoding!r}; "
        "send it as binary, base64 or quoted-printable"
    )


def _disposition(headers: Mapping[str, str]) -> dict[str, str]:
    """The parameters of ``Content-Disposition: form-data; name="f"; filename="a.png"``."""
    value = headers.get("content-disposition")
    if not value:
        return {}
    params: dict[str, str] = {}
    for item in _split_params(value)[1:]:
        key, sep, val = item.partition("=")
        if not sep:
            continue
        key = key.strip().lower()
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] == '"':
            val = val[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if key == "filename*":  # RFC 5987 (charset'language'percent-encoded) wins over filename
            charset, _, rest = val.partition("'")
            _, _, encoded = rest.partition("'")
            params["filename*"] = unquote(encoded, encoding=charset or "utf-8", errors="replace")
        else:
            params.setdefault(key, val)
    if "filename*" in params:
        params["filename"] = params.pop("filename*")
    return params


def _split_params(value: str) -> list[str]:
    """Split on ``;`` outside quoted strings."""
    items, current, quoted, escaped = [], [], False, False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == ";" and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    items.append("".join(current))
    return items
