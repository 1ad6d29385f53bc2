"""The service ``load_check.py`` loads: each answer is computed from its own request only, so a
client can tell its answer from anybody else's."""

from __future__ import annotations

from bentolite import Service, api
from bentolite.adapters import JsonInput


def _answer(value: dict) -> dict:
    return {"id": value["id"], "sum": sum(value["xs"]), "echo": value["tag"][::-1]}


class LoadEcho(Service):
    @api(input=JsonInput())
    def plain(self, value):
        return _answer(value)

    @api(input=JsonInput(), batch=True, max_batch_size=64, max_latency_ms=500)
    def batched(self, values):
        return [_answer(value) for value in values]


svc = LoadEcho()
