"""The usage tests meter real gateway calls: they use the gateway tests' fixtures."""

from tests.gateway.conftest import gateway_url, sim, start_sim

__all__ = ["gateway_url", "sim", "start_sim"]
