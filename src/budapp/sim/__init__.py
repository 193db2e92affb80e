"""budapp-sim: an OpenAI-compatible inference simulator (no GPU, no model weights).

It stands in wherever vLLM would run: demos, tests, and load tests of the gateway. It is a
self-contained raw ASGI application and imports nothing else from budapp (an import-linter
contract holds that), so it can be installed and run alone.
"""

from budapp.sim.app import SimApp, create_app
from budapp.sim.config import SimConfig

__all__ = ["SimApp", "SimConfig", "create_app"]
