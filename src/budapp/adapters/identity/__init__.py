"""Identity providers budapp trusts besides itself (OpenID Connect issuers)."""
