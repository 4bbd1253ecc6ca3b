"""`mint serve`'s options reach the served app's limits (uvicorn itself is replaced by a stand-in)."""

from __future__ import annotations

import uvicorn

from mint.cli.main import main
from mint.serving import ServeLimits


def test_serve_options_set_the_limits_of_the_app(model_dir, monkeypatch):
    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    options = ["--max-batch", "4", "--max-wait-ms", "2.5", "--body-timeout", "3", "--queue", "5"]
    assert main(["serve", "--model", str(model_dir), "--device", "cpu", "--port", "8123", *options]) == 0
    limits = served["app"].state.limits
    assert (limits.max_batch, limits.max_wait_ms, limits.body_timeout_s, limits.queue) == (4, 2.5, 3.0, 5)
    assert served["port"] == 8123
    gate = served["app"].state.gate
    assert (gate.max_batch, gate.max_wait_s, gate.capacity) == (4, 0.0025, 1 * 4 + 5)
    # Without the options: ServeLimits' own defaults.
    assert main(["serve", "--model", str(model_dir), "--device", "cpu"]) == 0
    defaults = ServeLimits()
    limits = served["app"].state.limits
    assert (limits.max_batch, limits.max_wait_ms, limits.body_timeout_s) == (
        defaults.max_batch,
        defaults.max_wait_ms,
        defaults.body_timeout_s,
    )
