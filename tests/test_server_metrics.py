"""The request series a lone process keeps in plain numbers (bentolite/server/metrics.py) render
what prometheus_client's own Counter and Histogram render for the same answers."""

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bentolite.server.metrics import DURATION, LATENCY_BUCKETS, REQUESTS, Metrics

answers = st.lists(
    st.tuples(
        st.sampled_from(["predict", "other"]),
        st.sampled_from([200, 400, 413, 500, 503]),
        # bucket bounds themselves, and values next to them, as well as any duration
        st.one_of(st.sampled_from(LATENCY_BUCKETS), st.floats(0, 100, allow_nan=False)),
    ),
    max_size=40,
)


def _request_series(text: bytes) -> list[str]:
    return [
        line
        for line in text.decode().splitlines()
        if line.startswith(("bentolite_requests_total", "bentolite_request_duration_seconds"))
    ]


@settings(max_examples=60, deadline=None)
@given(answers)
def test_live_counts_render_as_prometheus_client_would(answered):
    metrics = Metrics("svc", "1")
    registry = CollectorRegistry()
    requests = Counter(*REQUESTS, ["api", "status"], registry=registry)
    duration = Histogram(*DURATION, ["api"], buckets=LATENCY_BUCKETS, registry=registry)
    handles = {api: metrics.for_api(api) for api in ("predict", "other")}
    for api in handles:
        duration.labels(api)  # a label child exists from the start, as for every API
    for api, status, seconds in answered:
        handles[api].answered(status, seconds)
        requests.labels(api, str(status)).inc()
        duration.labels(api).observe(seconds)
    ours = _request_series(metrics.render()[0])
    theirs = [line for line in _request_series(generate_latest(registry)) if "_created" not in line]
    assert sorted(ours) == sorted(theirs)
