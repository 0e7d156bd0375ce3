"""Identity without a provider: its settings, the claim rule, the scope mapping, and a fuzz of
the token verifier's refusals (no input reaches PyJWT's key handling unchecked)."""

from __future__ import annotations

import random
import string
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from skywarden.server.auth.principal import ALL_TOOLS
from skywarden.server.identity.claims import ClaimRule, scopes_for_tool, tool_scopes
from skywarden.server.identity.jwks import _usable_keys
from skywarden.server.identity.resource import challenge, metadata_url
from skywarden.server.identity.tokens import TokenRefused, TokenVerifier, VerifiedToken, key_fits, looks_like_jwt
from skywarden.server.settings import SettingsError, load_settings

ISSUER = "https://login.example.test/tenant"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"oidc_issuers": "http://login.example.test"}, "must use https"),
        ({"oidc_issuers": "ftp://login.example.test"}, "https URL"),
        ({"oidc_issuers": f"{ISSUER},{ISSUER}"}, "twice"),
        ({"oidc_issuers": "https://login.example.test/?tenant=1"}, "https URL"),
        ({"oidc_algorithms": "HS256"}, "never none or an HMAC"),
        ({"oidc_algorithms": "none"}, "never none"),
        ({"oidc_algorithms": ","}, "at least one"),
        ({"oidc_leeway": "-1"}, "oidc_leeway"),
        ({"oidc_max_token_bytes": "100000"}, "oidc_max_token_bytes"),
        ({"admin_oidc_rule": "roles"}, "claim=value"),
        ({"admin_oidc_rule": "=Admin"}, "claim=value"),
        ({"admin_oidc_rule": "bad claim=x"}, "claim=value"),
        ({"oauth_resource_url": "http://mcp.example.test/mcp", "oidc_issuers": ISSUER}, "must use https"),
        ({"oauth_scope_map": "{"}, "JSON object"),
        ({"oauth_scope_map": '{"weather": []}'}, "non-empty list"),
        ({"oauth_scope_map": '{"bad scope": ["get_forecast"]}'}, "valid OAuth scope"),
        ({"oauth_scope_map": '["get_forecast"]'}, "table"),
        ({"oauth_rate_limit": "lots"}, "oauth_rate_limit"),
        ({"oauth_resource_url": "https://mcp.example.test/mcp"}, "needs oidc_issuers"),
        ({"admin_oidc_audience": "api://skywarden"}, "needs oidc_issuers"),
        ({"console_oidc_client_id": "console", "oidc_issuers": ISSUER}, "needs admin_oidc_audience"),
        ({"console_enabled": "maybe"}, "console_enabled"),
    ],
)
def test_malformed_identity_settings_are_named(values, words):
    environ = {f"SKYWARDEN_{k.upper()}": v for k, v in values.items()}
    with pytest.raises(SettingsError) as info:
        load_settings(environ=environ)
    assert words in str(info.value) and "invalid setting" in str(info.value)


def test_identity_settings_parse():
    settings = load_settings(
        environ={
            "SKYWARDEN_OIDC_ISSUERS": f"{ISSUER}, http://127.0.0.1:9000",
            "SKYWARDEN_OIDC_ALGORITHMS": "RS256,ES256",
            "SKYWARDEN_ADMIN_OIDC_RULE": " groups = 1234-abcd ",
            "SKYWARDEN_OAUTH_SCOPE_MAP": '{"weather": ["get_forecast", "get_alerts"]}',
            "SKYWARDEN_OAUTH_RESOURCE_URL": "https://mcp.example.test/mcp",
        }
    )
    assert settings.oidc_issuers == (ISSUER, "http://127.0.0.1:9000")
    assert settings.oidc_algorithms == ("RS256", "ES256") and settings.admin_oidc_rule == "groups=1234-abcd"
    assert settings.oauth_scope_map["weather"] == ("get_forecast", "get_alerts")
    import pickle

    assert pickle.loads(pickle.dumps(settings)).oauth_scope_map == settings.oauth_scope_map  # to workers


def verified(**claims) -> VerifiedToken:
    return VerifiedToken(ISSUER, "someone", claims, 0.0)


@pytest.mark.parametrize(
    ("claims", "matches"),
    [
        ({"roles": ["Skywarden.Admin", "Other"]}, True),
        ({"roles": "Skywarden.Admin"}, True),
        ({"roles": "Reader Skywarden.Admin"}, True),
        ({"roles": ["Skywarden.Admins"]}, False),
        ({"roles": "Skywarden.Administrator"}, False),
        ({"roles": {"Skywarden.Admin": True}}, False),
        ({"roles": 1}, False),
        ({}, False),
    ],
)
def test_the_admin_rule(claims, matches):
    assert ClaimRule.parse("roles=Skywarden.Admin").matches(verified(**claims)) is matches


def test_token_scopes_map_to_tools():
    scope_map = {"weather": ("get_forecast", "get_alerts")}
    assert tool_scopes(["tools"], {}) == {ALL_TOOLS}
    assert tool_scopes(["tool:get_forecast", "openid", "email", "tool:"], {}) == {"get_forecast"}
    assert tool_scopes(["weather"], scope_map) == {"get_forecast", "get_alerts"}
    assert scopes_for_tool("get_alerts", scope_map) == ["tool:get_alerts", "weather", "tools"]
    assert verified(scope="a b").scopes == {"a", "b"} and verified(scp=["a", 1]).scopes == {"a"}
    assert verified(scp="x y").scopes == {"x", "y"} and verified(scope=3).scopes == frozenset()


def test_challenges_and_metadata_addresses():
    assert (
        metadata_url("https://mcp.example.test/mcp")
        == "https://mcp.example.test/.well-known/oauth-protected-resource/mcp"
    )
    assert metadata_url("https://mcp.example.test") == "https://mcp.example.test/.well-known/oauth-protected-resource"
    text = challenge("https://mcp.example.test/mcp", "invalid_token", 'a "quoted" \\ text', "tools")
    assert text == (
        'Bearer resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp", '
        'error="invalid_token", error_description="a \\"quoted\\" \\\\ text", scope="tools"'
    )


def test_only_jwt_shaped_credentials_are_tokens():
    assert looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.e30.sig")
    for credential in ("sk_live_" + "a" * 40, "eyJhbGciOiJSUzI1NiJ9.e30", "a.b.c", "eyJ..", ""):
        assert looks_like_jwt(credential) is (credential == "eyJ..")


def test_symmetric_and_unreadable_keys_are_never_used():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    rsa_jwk = {**RSAAlgorithm.to_jwk(rsa_key, as_dict=True), "kid": "r"}
    ec_jwk = {**ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key(), as_dict=True), "kid": "e"}
    keys = _usable_keys(
        [
            rsa_jwk,
            ec_jwk,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {**rsa_jwk, "kid": "enc", "use": "enc"},
            {**rsa_jwk, "kid": None},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            "not a key",
        ]
    )
    assert set(keys) == {"r", "e"}
    assert key_fits(keys["r"], "RS256") and key_fits(keys["r"], "PS256") and not key_fits(keys["r"], "ES256")
    assert key_fits(keys["e"], "ES256") and not key_fits(keys["e"], "RS256")
    declared = _usable_keys([{**rsa_jwk, "alg": "RS512"}])["r"]
    assert key_fits(declared, "RS512") and not key_fits(declared, "RS256")


class OneKey:
    """An issuer whose one published key is ``key``."""

    def __init__(self, key) -> None:
        self.issuer = ISSUER
        self.key_ = key

    async def key(self, kid):
        return self.key_ if kid == "k1" else None


def _garbage(rng: random.Random, good: str) -> str:
    parts = good.split(".")
    choice = rng.randrange(6)
    alphabet = string.ascii_letters + string.digits + "-_=.+/ \x00é"
    if choice == 0:
        return "eyJ" + "".join(rng.choice(alphabet) for _ in range(rng.randrange(60))) + ".x.y"
    if choice == 1:
        i = rng.randrange(3)
        parts[i] = "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 80)))
        return ".".join(parts)
    if choice == 2:
        header = jwt.utils.base64url_encode(
            rng.choice([b"[]", b"{}", b'{"alg": 1}', b'{"alg":"RS256","kid":[]}', b"null"])
        )
        return header.decode() + "." + parts[1] + "." + parts[2]
    if choice == 3:
        payload = jwt.utils.base64url_encode(
            rng.choice([b"[]", b'{"iss": 5}', b"1e999", b'{"iss":"' + ISSUER.encode() + b'"}'])
        )
        return parts[0] + "." + payload.decode() + "." + parts[2]
    if choice == 4:
        flipped = list(good)
        i = rng.randrange(len(flipped))
        flipped[i] = "A" if flipped[i] != "A" else "B"
        return "".join(flipped)
    return good[: rng.randrange(len(good))]


async def test_fuzzed_tokens_are_refused_never_crash():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.PyJWK({**RSAAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "k1"})
    verifier = TokenVerifier({ISSUER: OneKey(jwk)}, frozenset({"RS256", "ES256"}), 30, 8000)
    good = jwt.encode(
        {"iss": ISSUER, "sub": "s", "aud": "api://x", "iat": int(time.time()), "exp": int(time.time()) + 600},
        private,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    assert (await verifier.verify(good, "api://x")).subject == "s"
    rng = random.Random(9728)
    reasons = set()
    for _ in range(2000):
        candidate = _garbage(rng, good)
        if candidate == good:
            continue
        try:
            await verifier.verify(candidate, "api://x")
        except TokenRefused as exc:
            reasons.add(exc.reason)
            assert candidate not in exc.description
        else:
            raise AssertionError(f"accepted a damaged token: {candidate[:80]}")
    assert {"token_malformed", "token_signature", "token_issuer", "token_algorithm"} <= reasons


def test_a_server_without_issuers_never_loads_the_jose_stack():
    """Start-up cost: PyJWT and cryptography load only when a token is first verified."""
    import subprocess
    import sys

    code = (
        "import sys, skywarden.server.app, skywarden.server.cli.main;"
        "print(sorted({'jwt', 'cryptography'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
