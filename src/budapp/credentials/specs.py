"""What each kind of credential holds. Fields typed `Secret` are encrypted at rest and only ever
returned masked; the others are plain configuration (endpoints, regions)."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import AnyHttpUrl, Field, SecretStr, StringConstraints, field_validator

from budapp.core.schemas import RequestSchema

Secret = Annotated[SecretStr, Field(min_length=1, max_length=4096)]
LargeSecret = Annotated[SecretStr, Field(min_length=1, max_length=256 * 1024)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=255, strip_whitespace=True)]


class CredentialSpec(RequestSchema):
    category: ClassVar[Literal["provider", "cloud"]]
    kind: str

    def secret_values(self) -> dict[str, str]:
        return {
            name: value.get_secret_value()
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        }

    def config_values(self) -> dict[str, Any]:
        return {
            name: str(value) if isinstance(value, AnyHttpUrl) else value
            for name in type(self).model_fields
            if name != "kind"
            and not isinstance(value := getattr(self, name), SecretStr)
            and value is not None
        }


# --- model providers ------------------------------------------------------------------------


class OpenAISpec(CredentialSpec):
    category = "provider"
    kind: Literal["openai"]
    api_key: Secret
    organization: Text | None = None
    base_url: AnyHttpUrl | None = None


class AnthropicSpec(CredentialSpec):
    category = "provider"
    kind: Literal["anthropic"]
    api_key: Secret
    base_url: AnyHttpUrl | None = None


class AzureOpenAISpec(CredentialSpec):
    category = "provider"
    kind: Literal["azure_openai"]
    api_key: Secret
    endpoint: AnyHttpUrl
    api_version: Text
    deployment: Text | None = None


class AwsBedrockSpec(CredentialSpec):
    category = "provider"
    kind: Literal["aws_bedrock"]
    aws_access_key_id: Secret
    aws_secret_access_key: Secret
    aws_session_token: Secret | None = None
    region: Text


class HuggingFaceSpec(CredentialSpec):
    category = "provider"
    kind: Literal["huggingface"]
    token: Secret


class OpenAICompatibleSpec(CredentialSpec):
    category = "provider"
    kind: Literal["openai_compatible"]
    base_url: AnyHttpUrl
    api_key: Secret | None = None


# --- clouds ---------------------------------------------------------------------------------


class AwsSpec(CredentialSpec):
    category = "cloud"
    kind: Literal["aws"]
    access_key_id: Secret
    secret_access_key: Secret
    session_token: Secret | None = None
    region: Text


class AzureSpec(CredentialSpec):
    category = "cloud"
    kind: Literal["azure"]
    tenant_id: Text
    client_id: Text
    client_secret: Secret
    subscription_id: Text


class GcpSpec(CredentialSpec):
    category = "cloud"
    kind: Literal["gcp"]
    service_account_json: LargeSecret
    project_id: Text | None = None

    @field_validator("service_account_json")
    @classmethod
    def _service_account(cls, value: SecretStr) -> SecretStr:
        try:
            document = json.loads(value.get_secret_value())
        except ValueError:
            raise ValueError("must be the JSON key file of a service account") from None
        required = {"type", "project_id", "private_key", "client_email"}
        if not isinstance(document, dict) or document.get("type") != "service_account":
            raise ValueError("must be a service account key (type: service_account)")
        if missing := sorted(required - document.keys()):
            raise ValueError(f"the key file lacks {', '.join(missing)}")
        return value


class KubeconfigSpec(CredentialSpec):
    category = "cloud"
    kind: Literal["kubeconfig"]
    kubeconfig: LargeSecret
    context: Text | None = None

    @field_validator("kubeconfig")
    @classmethod
    def _kubeconfig(cls, value: SecretStr) -> SecretStr:
        try:
            document = yaml.safe_load(value.get_secret_value())
        except yaml.YAMLError:
            raise ValueError("must be a kubeconfig in YAML") from None
        if not isinstance(document, dict) or not all(
            isinstance(document.get(section), list) and document[section]
            for section in ("clusters", "contexts", "users")
        ):
            raise ValueError("a kubeconfig needs clusters, contexts and users")
        return value


SPECS: tuple[type[CredentialSpec], ...] = (
    OpenAISpec,
    AnthropicSpec,
    AzureOpenAISpec,
    AwsBedrockSpec,
    HuggingFaceSpec,
    OpenAICompatibleSpec,
    AwsSpec,
    AzureSpec,
    GcpSpec,
    KubeconfigSpec,
)
SPEC_BY_KIND: dict[str, type[CredentialSpec]] = {
    spec.model_fields["kind"].annotation.__args__[0]: spec  # type: ignore[union-attr]
    for spec in SPECS
}

AnySpec = Annotated[
    OpenAISpec
    | AnthropicSpec
    | AzureOpenAISpec
    | AwsBedrockSpec
    | HuggingFaceSpec
    | OpenAICompatibleSpec
    | AwsSpec
    | AzureSpec
    | GcpSpec
    | KubeconfigSpec,
    Field(discriminator="kind"),
]
