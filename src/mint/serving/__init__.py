"""HTTP service and web page over `mint.inference` (needs the `serve` extra: fastapi, uvicorn,
python-multipart). The library never imports this package; `mint serve` does."""

from mint.serving.app import create_app
from mint.serving.limits import ModelGate, ServeLimits

__all__ = ["ModelGate", "ServeLimits", "create_app"]
