"""SMART Backend Services, static bearer and open servers."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from pydantic import ValidationError

from bridge.errors import ConfigError, RetriableError
from connectors.fhir_r4 import FhirOptions
from tests.connectors.fhir_server import (
    FakeFhirServer,
    make_connector,
    mounted,
    seed_basics,
    task_resource,
    write_key,
)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    directory = tmp_path_factory.mktemp("keys")
    return {alg: write_key(directory, alg) for alg in ("RS384", "ES384")}


@pytest.fixture
def secured():
    fake = FakeFhirServer(require_auth=True)
    seed_basics(fake)
    fake.put(task_resource("t1"))
    with mounted(fake):
        yield fake


def smart(keys, algorithm: str = "RS384", **more) -> dict:
    path, _public = keys[algorithm]
    return {
        "type": "smart_backend",
        "client_id": "bridge-client",
        "private_key_path": str(path),
        "algorithm": algorithm,
        "kid": f"key-{algorithm}",
        **more,
    }


def register(server: FakeFhirServer, keys, algorithm: str) -> None:
    server.register_client("bridge-client", f"key-{algorithm}", keys[algorithm][1])


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_smart_backend_signs_a_verifiable_assertion(secured, clock, keys, algorithm) -> None:
    register(secured, keys, algorithm)
    connector = make_connector(secured, clock, auth=smart(keys, algorithm))
    [page] = list(connector.poll(None))
    assert len(page.events) == 1

    [(header, claims)] = secured.assertions  # verified with the public key by the server
    assert header["alg"] == algorithm and header["kid"] == f"key-{algorithm}"
    assert claims["iss"] == claims["sub"] == "bridge-client"
    assert claims["aud"] == secured.token_url
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["iat"] == int(clock.now().timestamp())
    token_post = next(r for r in secured.requests if str(r.url) == secured.token_url)
    form = dict(p.split("=", 1) for p in token_post.content.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == (
        "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    )
    assert "system%2FTask.read" in form["scope"]
    # the token endpoint came from the SMART configuration
    assert secured.count("GET", "/.well-known/smart-configuration") == 1


def test_token_is_cached_until_shortly_before_it_expires(secured, clock, keys) -> None:
    register(secured, keys, "RS384")
    connector = make_connector(secured, clock, auth=smart(keys))
    list(connector.poll(None))
    list(connector.poll(None))
    assert len(secured.assertions) == 1

    clock.advance(timedelta(seconds=secured.token_lifetime - 20))  # inside the margin
    list(connector.poll(None))
    assert len(secured.assertions) == 2
    jtis = {claims["jti"] for _h, claims in secured.assertions}
    assert len(jtis) == 2


def test_a_401_refreshes_the_token_once_and_retries(secured, clock, keys) -> None:
    register(secured, keys, "ES384")
    connector = make_connector(secured, clock, auth=smart(keys, "ES384"))
    list(connector.poll(None))
    secured.revoke_tokens()  # the EHR rotated its signing keys, say

    [page] = list(connector.poll(None))

    assert len(page.events) == 1
    assert len(secured.assertions) == 2
    statuses = [r.url.path for r in secured.requests[-3:]]
    assert statuses == ["/fhir/Task", "/oauth2/token", "/fhir/Task"]


def test_a_configured_token_url_skips_discovery(secured, clock, keys) -> None:
    register(secured, keys, "RS384")
    auth = smart(keys, token_url=secured.token_url)
    list(make_connector(secured, clock, auth=auth).poll(None))
    assert secured.count("GET", "/.well-known/smart-configuration") == 0


def test_a_refused_assertion_is_a_configuration_error(secured, clock, keys) -> None:
    secured.register_client("bridge-client", "key-RS384", keys["ES384"][1])  # wrong key
    connector = make_connector(secured, clock, auth=smart(keys))
    with pytest.raises(ConfigError, match="token endpoint refused the client assertion"):
        list(connector.poll(None))


def test_static_bearer_token(secured, clock) -> None:
    secured.tokens.add("static-token")
    connector = make_connector(secured, clock, auth={"type": "bearer", "token": "static-token"})
    [page] = list(connector.poll(None))
    assert len(page.events) == 1
    task_get = next(r for r in secured.requests if r.url.path.endswith("/Task"))
    assert task_get.headers["Authorization"] == "Bearer static-token"


def test_a_bad_static_token_names_the_problem(secured, clock) -> None:
    connector = make_connector(secured, clock, auth={"type": "bearer", "token": "wrong"})
    with pytest.raises(RetriableError, match="401 error/login.*check the credentials"):
        list(connector.poll(None))


def test_no_auth_sends_no_authorization(server, clock) -> None:
    server.put(task_resource("t1"))
    list(make_connector(server, clock).poll(None))
    assert all("Authorization" not in r.headers for r in server.requests)


def test_bearer_token_is_secret_in_reprs() -> None:
    options = FhirOptions.model_validate(
        {"base_url": "https://x.example/fhir", "auth": {"type": "bearer", "token": "s3cret"}}
    )
    assert "s3cret" not in repr(options)


def test_key_of_the_wrong_kind_is_refused_at_configuration(keys) -> None:
    with pytest.raises(ValidationError, match="ES384 needs an EC P-384 key"):
        FhirOptions.model_validate(
            {
                "base_url": "https://x.example/fhir",
                "auth": {**smart(keys, "RS384"), "algorithm": "ES384"},
            }
        )


def test_missing_key_file_is_refused_at_configuration(tmp_path) -> None:
    with pytest.raises(ValidationError, match="cannot read private key"):
        FhirOptions.model_validate(
            {
                "base_url": "https://x.example/fhir",
                "auth": {
                    "type": "smart_backend",
                    "client_id": "c",
                    "kid": "k",
                    "private_key_path": str(tmp_path / "nope.pem"),
                },
            }
        )


def test_assertion_can_be_verified_offline(keys, clock) -> None:
    from connectors.fhir_r4.auth import client_assertion, load_private_key

    path, public = keys["RS384"]
    token = client_assertion(
        client_id="c",
        token_url="https://auth.example/token",
        key=load_private_key(path, "RS384"),
        algorithm="RS384",
        kid="k1",
        now=clock.now(),
    )
    claims = jwt.decode(
        token,
        public,
        algorithms=["RS384"],
        audience="https://auth.example/token",
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["exp"] - claims["iat"] == 240
