"""Access to the FHIR server: SMART Backend Services, a static bearer token, or nothing.

SMART Backend Services (``client_credentials`` with a signed JWT assertion) is what Epic,
Oracle Health and athenahealth offer a service with no user at the keyboard. The token is
cached until shortly before it expires and dropped when the server answers 401, so a
revoked or rotated token costs one extra round trip, not an outage.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from bridge.clock import Clock
from bridge.errors import ConfigError, RetriableError

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = timedelta(minutes=4)  # the spec allows at most 5; leave room for skew
REFRESH_MARGIN = timedelta(seconds=60)


def load_private_key(path: Path, algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The PEM key at ``path``, checked against the algorithm (RS384: RSA; ES384: EC P-384)."""
    try:
        key = load_pem_private_key(Path(path).read_bytes(), password=None)
    except OSError as exc:
        raise ValueError(f"cannot read private key {str(path)!r}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{str(path)!r} is not an unencrypted PEM private key ({exc})") from None
    if algorithm == "RS384" and not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"algorithm RS384 needs an RSA key; {str(path)!r} is not one")
    if algorithm == "ES384" and not (
        isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1)
    ):
        raise ValueError(f"algorithm ES384 needs an EC P-384 key; {str(path)!r} is not one")
    return key  # type: ignore[return-value]


def client_assertion(
    *, client_id: str, token_url: str, key: object, algorithm: str, kid: str, now: datetime
) -> str:
    """The signed JWT a SMART backend client presents instead of a secret (unique ``jti``)."""
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "jti": uuid.uuid4().hex,
        "iat": int(now.timestamp()),
        "exp": int((now + ASSERTION_LIFETIME).timestamp()),
    }
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid, "typ": "JWT"})


class Auth:
    """No credentials. Subclasses add an ``Authorization`` header."""

    can_refresh = False

    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        """Forget a token the server refused."""


class StaticBearer(Auth):
    def __init__(self, token: str) -> None:
        self._value = {"Authorization": f"Bearer {token}"}

    def headers(self) -> dict[str, str]:
        return dict(self._value)


@dataclass
class _Token:
    value: str
    refresh_at: datetime


class SmartBackend(Auth):
    """Fetches, caches and refreshes a ``client_credentials`` token."""

    can_refresh = True

    def __init__(
        self,
        *,
        client_id: str,
        key: object,
        algorithm: str,
        kid: str,
        scope: str,
        token_url: Callable[[], str],
        post: Callable[[str, dict[str, str]], httpx.Response],
        clock: Clock,
    ) -> None:
        self._client_id = client_id
        self._key = key
        self._algorithm = algorithm
        self._kid = kid
        self._scope = scope
        self._token_url = token_url
        self._post = post
        self._clock = clock
        self._token: _Token | None = None
        self.fetched = 0  # tokens obtained, for tests and `bridge check`

    def headers(self) -> dict[str, str]:
        now = self._clock.now()
        if self._token is None or now >= self._token.refresh_at:
            self._token = self._fetch(now)
        return {"Authorization": f"Bearer {self._token.value}"}

    def invalidate(self) -> None:
        self._token = None

    def _fetch(self, now: datetime) -> _Token:
        url = self._token_url()
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion(
                client_id=self._client_id,
                token_url=url,
                key=self._key,
                algorithm=self._algorithm,
                kid=self._kid,
                now=now,
            ),
        }
        response = self._post(url, form)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code >= 500 or response.status_code == 429:
            raise RetriableError(f"token endpoint answered {response.status_code}")
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = body.get("error_description") or body.get("error") if body else None
            raise ConfigError(
                f"token endpoint refused the client assertion ({response.status_code}"
                f"{': ' + str(error) if error else ''}); check client_id, kid and the "
                "registered public key"
            )
        self.fetched += 1
        lifetime = timedelta(seconds=float(body.get("expires_in") or 300))
        margin = min(REFRESH_MARGIN, lifetime / 10)
        return _Token(str(body["access_token"]), now + lifetime - margin)
