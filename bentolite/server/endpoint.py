"""``ApiEndpoint``: the ASGI app behind ``POST /<route>`` of one API: read, parse (the input
adapter), call (alone or in a batch), render (the output adapter)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from bentolite.adapters.base import HttpRequest, HttpResponse
from bentolite.exceptions import BadInput, BentoliteError, InferenceError, Overloaded
from bentolite.server.answer_cycle import WHOLE_ANSWER, valid_header_value
from bentolite.server.batching import Batcher
from bentolite.server.errors import error_response, internal_error
from bentolite.server.inline import InlinePolicy
from bentolite.server.limits import INLINE_PARSE_LIMIT
from bentolite.server.logs import request_id
from bentolite.server.metrics import ApiMetrics
from bentolite.server.state import ServerState
from bentolite.service import ApiSpec

logger = logging.getLogger("bentolite.server.app")

_HAS_UNCANCEL = sys.version_info >= (3, 11)  # Task.uncancel, which deadlines.py needs
#: bytes of an API name or request id kept in the crash record
MAX_RECORDED_NAME = 60


def _request_id() -> bytes | None:
    """The request's id (middleware.py), as the crash record names it."""
    value = request_id.get()
    return value.encode("ascii")[:MAX_RECORDED_NAME] if value else None


def _declared_length(headers: dict[str, str]) -> int:
    value = headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else 0


#: media type -> (Content-Type value, whether that value may go out without uvicorn's check)
_CONTENT_TYPES: dict[str, tuple[bytes, bool]] = {}


def _content_type(media_type: str) -> tuple[bytes, bool]:
    """The Content-Type of an answer of ``media_type``, as Starlette's ``Response`` writes it
    (a ``text/`` type without a charset gets ``charset=utf-8``), and whether it is a valid
    header value."""
    known = _CONTENT_TYPES.get(media_type)
    if known is not None:
        return known
    text = media_type
    if text.startswith("text/") and "charset=" not in text.lower():
        text += "; charset=utf-8"
    value = text.encode("latin-1")
    known = (value, valid_header_value(value))
    if len(_CONTENT_TYPES) < 64:  # the types an app answers with are few; a bound all the same
        _CONTENT_TYPES[media_type] = known
    return known


def _head(answer: HttpResponse, extra: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The headers of an adapter's answer, as Starlette's ``Response`` would write them, without
    building one; then ``extra``."""
    return [
        (b"content-length", b"%d" % len(answer.body)),
        (b"content-type", _content_type(answer.media_type)[0]),
        *extra,
    ]


def _head_lines(answer: HttpResponse, extra: Sequence[tuple[bytes, bytes]]) -> bytes | None:
    """The same headers as rendered header lines, for the one-message answer
    (``answer_cycle.py``); None when the content type is not a valid header value (uvicorn's
    own check then refuses it)."""
    content_type, valid = _content_type(answer.media_type)
    if not valid:
        return None
    # rendered here rather than from _head's list: this is every API answer's path
    lines = b"content-length: %d\r\ncontent-type: %s\r\n" % (len(answer.body), content_type)
    for name, value in extra:
        lines += name + b": " + value + b"\r\n"
    return lines


def _cancelled(exc: BaseException) -> bool:
    """Whether ``exc`` is the running task being cancelled (a timeout, a shutdown), rather than
    a ``CancelledError`` that user code raised on its own."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return cancelling is None or cancelling() > 0


class _Job:
    """One request of a batch: its parsed payload, and the request its answer is rendered for."""

    __slots__ = ("payload", "request")

    def __init__(self, payload: Any, request: HttpRequest) -> None:
        self.payload = payload
        self.request = request


class ApiEndpoint:
    """The ASGI app behind ``POST /<route>`` of one API."""

    def __init__(self, state: ServerState, spec: ApiSpec) -> None:
        self.state = state
        self.spec = spec
        self.adapter = spec.adapter
        self.output = spec.output
        self.is_async = spec.is_async
        self.metrics: ApiMetrics = state.metrics.for_api(spec.name, batch=spec.batch)
        #: the API as the crash record names it (inflight.py)
        self.record_name = spec.name.encode("utf-8")[:MAX_RECORDED_NAME]
        self.policy = InlinePolicy(api=spec.name)
        self.deadlines = state.deadlines if _HAS_UNCANCEL else None
        self.batcher: Batcher | None = None
        if spec.batch:
            self.batcher = Batcher(
                spec.name,
                self._execute_batch,
                max_batch_size=spec.max_batch_size,
                max_latency_ms=spec.max_latency_ms,
                observe=self.metrics.batch,
            )
            state.batchers.append(self.batcher)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI, for the router (when other middleware runs before the endpoint)."""
        await self.serve(scope, receive, send)

    async def serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        extra_headers: Sequence[tuple[bytes, bytes]] = (),
        server_send: bool = False,
    ) -> tuple[int, int]:
        """Answer one request, ``extra_headers`` (the request id, a valid header by construction)
        added to the answer; its status and body size, for the access log. Every error is
        answered here, a bug as a logged 500.

        ``server_send`` says that ``send`` is the server's own, with no middleware between that
        would need to see the answer's head: the answer may then go in one message, where the
        server takes one (``answer_cycle.py``)."""
        started = time.perf_counter()
        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
            try:
                slot = self.state.in_flight.enter(self.record_name, _request_id(), _declared_length(headers))
            except Overloaded as exc:
                response: Response | HttpResponse = error_response(exc)
            else:
                try:
                    response = await self._respond(scope, receive, headers, slot)
                except Exception as exc:  # a bug past the endpoint's own error handling
                    response = internal_error(exc)
                finally:
                    self.state.in_flight.leave(slot)
            if isinstance(response, HttpResponse):
                status, body = response.status, response.body
                extensions = scope.get("extensions") if server_send else None
                head = (
                    _head_lines(response, extra_headers)
                    if extensions and WHOLE_ANSWER in extensions
                    else None
                )
                if head is not None:  # one message, where the server takes it (answer_cycle.py)
                    await send({"type": WHOLE_ANSWER, "status": status, "head": head, "body": body})
                else:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": status,
                            "headers": _head(response, extra_headers),
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
            else:
                status, body = response.status_code, response.body
                response.raw_headers.extend(extra_headers)
                await response(scope, receive, send)
        finally:
            in_flight.dec()
        self.metrics.answered(status, time.perf_counter() - started)
        return status, len(body)

    async def _respond(
        self, scope: Scope, receive: Receive, headers: dict[str, str], slot: int
    ) -> Response | HttpResponse:
        """The answer: an adapter's (sent as it is), or an error's."""
        try:
            if self.state.timeout is None:
                answer = await self._answer(receive, headers, slot)
            elif self.deadlines is not None:  # no extra task per request, nor timer (deadlines.py)
                answer = await self.deadlines.run(slot, self._answer(receive, headers, slot))
            else:
                answer = await asyncio.wait_for(self._answer(receive, headers, slot), self.state.timeout)
            if answer.status < 200 or answer.status in (204, 304):  # answers without a body
                return Response(answer.body, answer.status, media_type=answer.media_type)
            return answer
        except BentoliteError as exc:
            return error_response(exc)
        except asyncio.TimeoutError:
            return error_response(
                Overloaded(
                    f"API {self.spec.name!r} did not answer within the server's timeout of "
                    f"{self.state.timeout:g} s",
                    detail="raise it with bentolite serve --timeout",
                )
            )

    async def _answer(self, receive: Receive, headers: dict[str, str], slot: int) -> HttpResponse:
        self.state.check_ready()
        body = await self.state.body_reader.read(receive, headers, slot)
        request = HttpRequest.from_content_type(
            body, headers.get("content-type"), headers=headers, form_limits=self.state.form_limits
        )
        if self.batcher is None and not self.is_async:
            return await self._run_sync(self._serve_one, request)
        if len(body) > INLINE_PARSE_LIMIT:
            payload = await self.state.run_sync(self._parse, request)
        else:
            payload = self._parse(request)
        if self.batcher is None:
            return self._render(await self._call_async(payload), request, payload)
        outcome = await self.batcher.submit(_Job(payload, request), self.adapter.batch_size(payload))
        if isinstance(outcome, BentoliteError):
            raise outcome
        return outcome

    def _parse(self, request: HttpRequest) -> Any:
        try:
            return self.adapter.from_http(request)
        except BentoliteError:
            raise
        except Exception as exc:  # whatever the client sent made parsing fail: a client error
            raise BadInput(
                f"the input cannot be read by {self.adapter.name}", detail=f"{type(exc).__name__}: {exc}"
            ) from exc

    def _call(self, payload: Any) -> Any:
        try:
            return self.spec.func(self.state.service, payload)
        except BentoliteError:
            raise  # the function chose the answer (e.g. BadInput for a 400)
        except BaseException as exc:  # noqa: B036  user code: even SystemExit is the API's failure
            raise self._failure(exc) from exc

    async def _call_async(self, payload: Any) -> Any:
        try:
            return await self.spec.func(self.state.service, payload)
        except BentoliteError:
            raise
        except BaseException as exc:  # noqa: B036  as in _call, but a real cancellation goes on
            if _cancelled(exc):
                raise
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> InferenceError:
        return InferenceError(
            f"API {self.spec.name!r} failed", detail=f"{type(exc).__name__}; see the server log"
        )

    def _render(self, result: Any, request: HttpRequest, payload: Any) -> HttpResponse:
        try:
            return self.output.to_http(result, request, payload)
        except BentoliteError:
            raise
        except Exception as exc:  # a result the output cannot render is the API's failure
            raise InferenceError(
                f"the result of API {self.spec.name!r} cannot be rendered by {self.output.name}",
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc

    def _serve_one(self, request: HttpRequest) -> HttpResponse:
        """An unbatched request to a sync function: in one thread-pool hop, or on the loop when
        the API's calls are cheap (``inline.py``)."""
        payload = self._parse(request)
        return self._render(self._call(payload), request, payload)

    async def _run_sync(self, work: Callable[[Any], Any], arg: Any) -> Any:
        """``work(arg)`` for a sync function (one request or one batch): on the loop while the
        inline policy finds such calls cheap, else in the pool; timed either way for the policy."""
        if self.policy.inline:
            started = time.perf_counter()  # the clock alone: no system call on the loop
            try:
                return work(arg)
            finally:
                self.policy.inline_call(time.perf_counter() - started)
        return await self.state.run_sync(self._timed_in_pool, work, arg)

    def _timed_in_pool(self, work: Callable[[Any], Any], arg: Any) -> Any:
        """``work(arg)`` in the pool, timed for the inline policy."""
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return work(arg)
        finally:
            self.policy.pool_call(time.thread_time() - cpu, time.perf_counter() - wall)

    # --- batches: each returns one outcome per job, an HttpResponse or a BentoliteError ---
    async def _execute_batch(self, jobs: list[_Job]) -> list[Any]:
        if not self.is_async:
            return await self._run_sync(self._run_batch, jobs)
        groups = self._groups(jobs)
        outcomes: list[Any] = []
        for batch, sizes, members in groups:
            try:
                outcomes += self._split_and_render(await self._call_async(batch), sizes, members)
            except BentoliteError as exc:
                if len(groups) == 1:
                    raise
                outcomes.append(exc)  # a group of one payload: only that caller fails
        return outcomes

    def _run_batch(self, jobs: list[_Job]) -> list[Any]:
        """A batch for a sync function, in one thread-pool hop: merge, call, split, render."""
        groups = self._groups(jobs)
        outcomes: list[Any] = []
        for batch, sizes, members in groups:
            try:
                outcomes += self._split_and_render(self._call(batch), sizes, members)
            except BentoliteError as exc:
                if len(groups) == 1:
                    raise
                outcomes.append(exc)  # a group of one payload: only that caller fails
        return outcomes

    def _groups(self, jobs: list[_Job]) -> list[tuple[Any, list[int], list[_Job]]]:
        """What to call, as (batch, sizes, jobs): one merged group, or one group per job when
        their payloads do not merge."""
        merged = self._merge([job.payload for job in jobs])
        if merged is not None:
            return [(merged[0], merged[1], jobs)]
        return [(*self.adapter.merge([job.payload]), [job]) for job in jobs]

    def _merge(self, payloads: list[Any]) -> tuple[Any, list[int]] | None:
        """The merged batch and sizes, or None when the payloads do not merge (say, arrays of
        different widths): then each is called on its own, so a malformed request fails alone."""
        try:
            return self.adapter.merge(payloads)
        except Exception:  # incompatible payloads; a lone one re-raises when merged on its own
            if len(payloads) == 1:
                raise
            logger.debug("API %s: a batch of %d did not merge", self.spec.name, len(payloads), exc_info=True)
            return None

    def _split_and_render(self, result: Any, sizes: list[int], jobs: list[_Job]) -> list[Any]:
        try:
            parts = self.adapter.split(result, sizes)
        except BentoliteError:
            raise
        except Exception as exc:  # the function's result does not fit the batch
            raise InferenceError(
                f"the result of API {self.spec.name!r} cannot be split into {len(sizes)} answers",
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
        outcomes: list[Any] = []
        for part, job in zip(parts, jobs):
            try:
                outcomes.append(self._render(part, job.request, job.payload))
            except BentoliteError as exc:  # only this caller's answer failed
                outcomes.append(exc)
        return outcomes
