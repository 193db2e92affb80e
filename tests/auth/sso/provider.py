"""A real OpenID Connect provider for the tests: oidc-provider-mock (Flask + authlib) served
by werkzeug on a loopback port in a thread, wrapped to add what the mock leaves out or what
the tests need to control:

- PKCE: the mock ignores `code_challenge`; the wrapper remembers the challenge of each code it
  issues and refuses a token request whose `code_verifier` does not match (RFC 7636, S256).
- Outages: `down = True` answers every request with 503.
- Counting: how many times the key set was fetched.
- Provider sessions: with `session_id` set, the ID tokens it issues carry it as `sid` (the
  mock issues none), as Keycloak's do.

The tests also reach into the provider's storage for its signing key, to mint access tokens
with Keycloak-shaped claims (the mock only issues opaque access tokens) and to rotate keys.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask
import httpx
import jwt
import oidc_provider_mock
import werkzeug.serving
from authlib.jose import RSAKey
from werkzeug.wrappers import Request, Response

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class TestProvider:
    __test__ = False  # not a test class

    def __init__(self) -> None:
        self.flask_app = oidc_provider_mock.app(require_nonce=True)
        with self.flask_app.test_request_context():
            self.flask_app.preprocess_request()
            self.storage = flask.g.oidc_provider_mock_storage
        self.down = False
        self.jwks_fetches = 0
        self._challenges: dict[str, str] = {}
        self.issuer = ""
        self.session_id: str | None = None

    # --- WSGI wrapper ----------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if self.down:
            return Response("down", status=503)(environ, start_response)
        request = Request(environ)
        if request.path == "/jwks":
            self.jwks_fetches += 1
        if request.path == "/oauth2/token" and request.method == "POST":
            # Read the form from a copy of the body: the provider reads it again afterwards.
            body = request.get_data()
            environ["wsgi.input"] = io.BytesIO(body)
            refused = self._check_pkce(Request(dict(environ, **{"wsgi.input": io.BytesIO(body)})))
            if refused is not None:
                return refused(environ, start_response)
            if self.session_id is not None:
                return self._with_sid(environ, start_response)
        if request.path == "/oauth2/authorize" and request.method == "POST":
            return self._authorize(request, environ, start_response)
        return self.flask_app(environ, start_response)

    def _authorize(
        self, request: Request, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        challenge = request.args.get("code_challenge")
        captured: dict[str, str] = {}

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            for name, value in headers:
                if name.lower() == "location":
                    captured["location"] = value
            return start_response(status, headers, *args)

        # Drain the response now: the app may call start_response only while iterated.
        body = list(self.flask_app(environ, capture))
        code = parse_qs(urlsplit(captured.get("location", "")).query).get("code", [None])[0]
        if code is not None and challenge is not None:
            self._challenges[code] = challenge
        return body

    def _with_sid(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """The token response, its ID token re-signed with `sid` added."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            captured["status"] = status
            return lambda _: None

        body = b"".join(self.flask_app(environ, capture))
        if not captured["status"].startswith("200"):
            return Response(body, status=captured["status"], content_type="application/json")(
                environ, start_response
            )
        tokens = json.loads(body)
        claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
        tokens["id_token"] = jwt.encode(
            {**claims, "sid": self.session_id},
            self.storage.jwk.get_private_key(),
            algorithm="RS256",
            headers={"kid": self.kid},
        )
        return Response(json.dumps(tokens), content_type="application/json")(
            environ, start_response
        )

    def _check_pkce(self, request: Request) -> Response | None:
        code = request.form.get("code", "")
        challenge = self._challenges.pop(code, None)
        if challenge is None:
            return None  # an unknown code: the provider itself refuses it
        verifier = request.form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != challenge:
            return Response(
                '{"error": "invalid_grant", "error_description": "PKCE verification failed"}',
                status=400,
                content_type="application/json",
            )
        return None

    # --- test controls -------------------------------------------------------------------

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims)
        assert response.status_code == 204, response.text

    def authorize(self, authorization_url: str, sub: str) -> str:
        """Plays the user approving the login on the provider's page; returns the callback
        URL the provider redirects the browser to."""
        response = httpx.post(authorization_url, data={"sub": sub})
        assert response.status_code == 302, response.text
        return response.headers["location"]

    def rotate_key(self) -> None:
        self.storage.jwk = RSAKey.generate_key(is_private=True)

    @property
    def kid(self) -> str:
        # The key set publishes the key under its RFC 7638 thumbprint.
        return str(self.storage.jwk.as_dict(is_private=False)["kid"])

    def mint(
        self,
        claims: dict[str, Any],
        *,
        key: Any = None,
        kid: str | None = None,
        algorithm: str = "RS256",
        lifetime: int = 300,
    ) -> str:
        """An access token as Keycloak would issue it for this provider's realm."""
        now = int(time.time())
        payload = {
            "iss": self.issuer,
            "aud": "budapp",
            "azp": "budapp",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        signing_key = key if key is not None else self.storage.jwk.get_private_key()
        headers = {"kid": kid if kid is not None else self.kid}
        return jwt.encode(payload, signing_key, algorithm=algorithm, headers=headers)


@contextmanager
def running_provider() -> Iterator[TestProvider]:
    provider = TestProvider()
    server = werkzeug.serving.make_server("127.0.0.1", 0, provider, threaded=True)
    provider.issuer = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield provider
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
