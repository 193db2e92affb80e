"""The OpenAI-compatible gateway (`/v1/...`): API-key auth, routing over router targets,
rate limits, streaming passthrough and usage metering, on a hot path with no database read."""
