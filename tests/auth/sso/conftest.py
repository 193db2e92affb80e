"""An app in `oidc` identity mode trusting two real providers started on loopback:
`acme` (a Keycloak realm bound to the organisation "Acme") and `shared` (one realm for many
tenants: the organisation comes from the token's org_id)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from budapp.main import create_app
from tests.auth.sso.provider import TestProvider, running_provider
from tests.conftest import make_settings

ACME_ORG = "Acme"
REDIRECT_TARGET = "https://console.example.com/app"
SERVICE_TOKEN = "internal-service-token-for-tests"


@pytest.fixture(scope="module")
def acme() -> Iterator[TestProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def shared() -> Iterator[TestProvider]:
    with running_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
async def app(
    data_dir: Path, db_url: str, acme: TestProvider, shared: TestProvider
) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        data_dir,
        db_url,
        identity_mode="oidc",
        # The world's accounts log in with passwords; the refusal is tested on its own.
        oidc_allow_password_login=True,
        public_url="http://budapp.test",
        oidc_redirect_targets=[REDIRECT_TARGET],
        oidc_jwks_min_refresh_seconds=0,
        app_api_token=SERVICE_TOKEN,
        oidc_providers=[
            {
                "name": "acme",
                "issuer": acme.issuer,
                "client_id": "budapp",
                "client_secret": "acme-client-secret",
                "organization": ACME_ORG,
            },
            {
                "name": "shared",
                "issuer": shared.issuer,
                "client_id": "budapp",
                "allow_super_admin": True,
                "role_mapping": {"platform-operator": "super_admin", "team-lead": "project_admin"},
            },
        ],
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application
