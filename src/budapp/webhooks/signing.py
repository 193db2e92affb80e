"""The signature receivers check: `X-Budapp-Signature: sha256=<hex>`, the HMAC-SHA256 of
`"<X-Budapp-Timestamp>.<body>"` keyed with the webhook's secret (docs/webhooks.md)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_SCHEME = "sha256="


def sign(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return SIGNATURE_SCHEME + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: int, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
