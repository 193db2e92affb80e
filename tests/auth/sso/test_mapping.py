"""Pure rules: provider roles onto budapp's hierarchy, and which redirect targets are safe."""

from __future__ import annotations

from typing import Any

import pytest

from budapp.auth.providers import IdentityProvider
from budapp.auth.provisioning import role_from_claims
from budapp.auth.sso import is_allowed_target
from budapp.core.roles import Role
from budapp.settings import OidcProviderSettings


def _provider(**overrides: Any) -> IdentityProvider:
    config = OidcProviderSettings(
        name="kc", issuer="https://sso.example.com/realms/acme", client_id="bud.app", **overrides
    )
    return IdentityProvider(config, client=None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({}, Role.USER),
        ({"realm_access": {"roles": ["offline_access"]}}, Role.USER),
        ({"realm_access": {"roles": ["user", "admin"]}}, Role.ORG_ADMIN),
        # Client roles live under the client id, dots and all.
        ({"resource_access": {"bud.app": {"roles": ["project-admin"]}}}, Role.PROJECT_ADMIN),
        ({"resource_access": {"other": {"roles": ["org_admin"]}}}, Role.USER),
        ({"realm_access": {"roles": ["super_admin"]}}, Role.USER),  # not allowed to grant
        ({"realm_access": "admin"}, Role.USER),  # malformed claims are ignored
        ({"realm_access": {"roles": [1, None, "org-admin"]}}, Role.ORG_ADMIN),
    ],
)
def test_keycloak_roles_map_onto_the_hierarchy(claims: dict[str, Any], expected: Role) -> None:
    assert role_from_claims(_provider(), claims) is expected


def test_custom_claim_mapping_and_default_role() -> None:
    provider = _provider(
        roles_claims=["groups"],
        role_mapping={"/platform/ops": "super_admin", "/ml/leads": "project_admin"},
        allow_super_admin=True,
        default_role="project_admin",
    )
    assert role_from_claims(provider, {"groups": ["/ml/leads"]}) is Role.PROJECT_ADMIN
    assert role_from_claims(provider, {"groups": ["/platform/ops"]}) is Role.SUPER_ADMIN
    assert role_from_claims(provider, {"groups": []}) is Role.PROJECT_ADMIN
    # Keycloak's claims are not read when the operator names others.
    assert role_from_claims(provider, {"realm_access": {"roles": ["admin"]}}) is (
        Role.PROJECT_ADMIN
    )


TARGETS = ["https://console.example.com/app", "http://localhost:3000"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://console.example.com/app", True),
        ("https://console.example.com/app/deep/page?x=1", True),
        ("https://CONSOLE.example.com/app", True),
        ("http://localhost:3000/anything", True),
        ("https://console.example.com/apple", False),
        ("https://console.example.com/", False),
        ("http://localhost:3001/", False),
        ("https://console.example.com@evil.example/app", False),
        ("https://evil.example/https://console.example.com/app", False),
        ("ftp://console.example.com/app", False),
        ("https://console.example.com/app\n.evil", False),
        ("/relative/path", False),
    ],
)
def test_redirect_targets(url: str, allowed: bool) -> None:
    assert is_allowed_target(url, TARGETS) is allowed


def test_provider_settings_are_validated() -> None:
    from pydantic import ValidationError  # noqa: PLC0415

    from budapp.settings import Settings  # noqa: PLC0415

    entry = {"name": "a", "issuer": "https://x", "client_id": "c"}
    with pytest.raises(ValidationError):
        Settings(oidc_providers=[entry, {**entry, "name": "b"}])  # same issuer twice
    with pytest.raises(ValidationError):
        Settings(oidc_providers=[{**entry, "name": "Bad Name"}])
    with pytest.raises(ValidationError):
        Settings(oidc_providers=[{**entry, "role_mapping": {"x": "emperor"}}])


def test_providers_and_service_token_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from budapp.settings import Settings  # noqa: PLC0415

    monkeypatch.setenv(
        "BUDAPP_OIDC_PROVIDERS",
        '[{"name": "kc", "issuer": "https://sso.example.com/realms/acme", "client_id": "budapp",'
        ' "client_secret": "s3cret", "organization": "Acme"}]',
    )
    monkeypatch.setenv("BUDAPP_OIDC_REDIRECT_TARGETS", "https://a.example/app,https://b.example")
    monkeypatch.setenv("APP_API_TOKEN", "from-the-seeds-name")
    settings = Settings()
    provider = settings.oidc_providers[0]
    assert (provider.name, provider.organization, provider.expected_audience) == (
        "kc",
        "Acme",
        "budapp",
    )
    assert "s3cret" not in repr(settings)
    assert settings.oidc_redirect_targets == ["https://a.example/app", "https://b.example"]
    assert settings.app_api_token is not None
    assert settings.app_api_token.get_secret_value() == "from-the-seeds-name"
