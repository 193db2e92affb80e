from tests.gateway.conftest import gateway_url

__all__ = ["gateway_url"]
