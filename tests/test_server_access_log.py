"""The access line written straight to the log stream (bentolite/server/access_log.py) is, byte
for byte, what logging writes for the same request, in both formats; any other logging set-up
gets the line through logging."""

import io
import json
import logging
import logging.config
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bentolite.server import access_log
from bentolite.server.access_log import write_access_line
from bentolite.server.logs import log_config, request_id

requests = st.fixed_dictionaries(
    {
        "client": st.one_of(
            st.none(), st.tuples(st.sampled_from(["127.0.0.1", "::1"]), st.integers(1, 65535))
        ),
        "method": st.sampled_from(["GET", "POST", "PUT"]),
        "path": st.text(st.characters(codec="utf-8"), max_size=30).map(lambda t: "/" + t),
        "http_version": st.sampled_from(["1.0", "1.1"]),
    }
)


@pytest.fixture(params=["text", "json"])
def stream(request):
    """bentolite's logging set-up (as ``bentolite serve`` gives it), writing to a string."""
    saved = logging.getLogger("bentolite").handlers[:], logging.getLogger("bentolite").propagate
    logging.config.dictConfig(log_config("info", request.param))
    out = io.StringIO()
    logging.getLogger("bentolite").handlers[0].setStream(out)
    yield out
    parent = logging.getLogger("bentolite")
    parent.handlers[:], parent.propagate = saved


def _without_pytest_handlers() -> None:
    """pytest adds its capture handlers to non-propagating loggers for each test; a server's
    logging has only its own handler."""
    parent = logging.getLogger("bentolite")
    parent.handlers = [h for h in parent.handlers if type(h) is logging.StreamHandler]


class _PassAll(logging.Filter):
    pass


def _through_logging(scope, status, size, seconds, rid):
    """The same line, forced through logging (a filter on the logger rules the direct write out)."""
    passing = _PassAll()
    access_log.access_logger.addFilter(passing)
    token = request_id.set(rid)
    try:
        write_access_line(scope, status, size, seconds, rid)
    finally:
        request_id.reset(token)
        access_log.access_logger.removeFilter(passing)


# the stream is emptied for each example; the set-up it stands for is the same for all
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scope=requests,
    status=st.integers(100, 599),
    size=st.integers(0, 10**9),
    seconds=st.floats(0, 1000, allow_nan=False),
    rid=st.text("0123456789abcdef", min_size=1, max_size=32),
    now=st.floats(1e9, 4e9, allow_nan=False),
)
def test_the_direct_line_is_the_line_logging_writes(stream, scope, status, size, seconds, rid, now):
    _without_pytest_handlers()
    stream.seek(0)
    stream.truncate()
    assert access_log._direct_handler() is not None
    with pytest.MonkeyPatch.context() as patch:  # one clock reading for both lines
        patch.setattr(time, "time", lambda: now)
        patch.setattr(time, "time_ns", lambda: int(now * 1e9))
        write_access_line(scope, status, size, seconds, rid)
        _through_logging(scope, status, size, seconds, rid)
    direct, logged, end = stream.getvalue().split("\n")
    assert direct == logged and end == ""


def test_a_handler_of_the_users_gets_the_record_with_its_fields(stream, caplog):
    with caplog.at_level(logging.INFO, logger="bentolite.access"):  # caplog adds its handler
        assert access_log._direct_handler() is None
        write_access_line({"client": ("127.0.0.1", 5), "method": "GET", "path": "/x"}, 200, 3, 0.5, "ab")
    (record,) = [r for r in caplog.records if r.name == "bentolite.access"]
    assert (record.path, record.status, record.size, record.duration_ms) == ("/x", 200, 3, 500.0)
    assert stream.getvalue().count("\n") == 1  # and bentolite's own handler still wrote its line


def test_a_changed_format_is_followed_at_once(stream):
    _without_pytest_handlers()
    handler = logging.getLogger("bentolite").handlers[0]
    handler.setFormatter(logging.Formatter("%(levelname)s|%(message)s"))
    write_access_line({"client": None, "method": "GET", "path": "/x"}, 404, 0, 0.001, "ab")
    assert stream.getvalue() == 'INFO|- "GET /x HTTP/1.1" 404 0B 1.00ms\n'


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.text(st.characters(codec="utf-8"), max_size=20))
def test_a_path_cannot_forge_a_line_of_the_log(stream, path):
    _without_pytest_handlers()
    stream.seek(0)
    stream.truncate()
    write_access_line({"client": None, "method": "GET", "path": "/" + path}, 200, 0, 0.0, "ab")
    line, end = stream.getvalue().split("\n")
    assert end == "" and "\r" not in line
    if line.startswith("{"):  # JSON escapes the controls, and keeps the path exact in its field
        assert json.loads(line)["path"] == "/" + path
    else:  # text: nothing unprintable at all (no line break of any kind)
        assert line.isprintable()
