"""Identity without a provider: its settings, the claim rule, the scope mapping, and a fuzz of
the token verifier's refusals (no input reaches PyJWT's key handling unchecked)."""

from __future__ import annotations

import random
import string
import time
import unicodedata

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from skywarden.server.identity.claim_text import UnusableClaim, read_claims
from skywarden.server.identity.claims import ClaimRule, scopes_for_tool, tool_scopes
from skywarden.server.identity.jwks import _usable_keys
from skywarden.server.identity.resource import challenge, metadata_url
from skywarden.server.identity.tokens import TokenRefused, TokenVerifier, VerifiedToken, key_fits, looks_like_jwt
from skywarden.server.principal import ALL_TOOLS, Principal
from skywarden.server.settings import ASYMMETRIC_ALGORITHMS, SettingsError, load_settings
from tests.support.json_strategies import json_values

ISSUER = "https://login.example.test/tenant"
TOOLS = frozenset({"get_forecast", "get_alerts", "word.count"})
ASYMMETRIC = frozenset(ASYMMETRIC_ALGORITHMS)


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
    return VerifiedToken(ISSUER, "someone", "someone", None, frozenset(), claims, 0.0)


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
    assert tool_scopes(["tools"], {}, TOOLS) == {ALL_TOOLS}
    assert tool_scopes(["tool:get_forecast", "openid", "email", "tool:"], {}, TOOLS) == {"get_forecast"}
    assert tool_scopes(["weather"], scope_map, TOOLS) == {"get_forecast", "get_alerts"}
    assert tool_scopes(["everything"], {"everything": ("*",)}, TOOLS) == {ALL_TOOLS}
    assert tool_scopes(["gone"], {"gone": ("uninstalled", "get_alerts")}, TOOLS) == {"get_alerts"}
    assert scopes_for_tool("get_alerts", scope_map) == ["tool:get_alerts", "weather", "tools"]


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
    keys, unreadable = _usable_keys(
        [
            rsa_jwk,
            ec_jwk,
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {**rsa_jwk, "kid": "enc", "use": "enc"},
            {**rsa_jwk, "kid": None},
            {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
            {"kty": "EC", "kid": "odd", "alg": "none"},  # PyJWT raises NotImplementedError
            {**rsa_jwk, "kid": "r2", "key_ops": ["sign"]},  # as oidc-provider publishes its public keys
            "not a key",
        ]
    )
    assert set(keys) == {"r", "e", "r2"}
    assert unreadable == ["broken", "odd"]
    assert key_fits(keys["r"], "RS256") and key_fits(keys["r"], "PS256") and not key_fits(keys["r"], "ES256")
    assert key_fits(keys["e"], "ES256") and not key_fits(keys["e"], "RS256")
    declared = _usable_keys([{**rsa_jwk, "alg": "RS512"}])[0]["r"]
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


# --- strings from a verified token (server/identity/claim_text.py) ------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=300)  # lone surrogates included
NASTY = ["\ud800", "\udfff", "\x00", "\x1b[2J", "\x7f", "\x85", "\u2028", "\u2029", "\u202e", "\u2066", "\r\n", "\t"]
# Characters that show nothing; docs/identity.md names the class, not these members.
INVISIBLE = [
    "\u200b",  # zero-width space
    "\u200c",
    "\u200d",
    "\u2060",  # word joiner
    "\u2063",
    "\ufeff",
    "\u00ad",  # soft hyphen
    "\U000e0041",  # tag characters
    "\U000e007f",
    "\u3164",  # Hangul fillers
    "\u115f",
    "\u1160",
    "\uffa0",
    "\u2800",  # blank Braille pattern
    "\ufe0f",  # variation selectors
    "\U000e0100",
    "\u034f",  # combining grapheme joiner
    "\u180e",
    "\U0001d173",  # musical symbol begin beam
    "\ue000",  # private use
    "\U000f0000",
    "\u0378",  # unassigned
    "\u3000",  # ideographic space
]
INVISIBLE_TEXT = st.lists(st.sampled_from([*INVISIBLE, " ", "\u00a0", "\u0301"]), min_size=1, max_size=6).map("".join)
CLAIM_VALUES = st.one_of(
    ANY_TEXT,
    st.sampled_from(NASTY + INVISIBLE).flatmap(lambda bad: st.builds(lambda a, b: a + bad + b, ANY_TEXT, ANY_TEXT)),
    INVISIBLE_TEXT,
    st.builds(lambda a, b: a + b, INVISIBLE_TEXT, st.sampled_from(["ada", "👩\u200d💻", "❤\ufe0f", "Ω"])),
    st.text(max_size=20).map(lambda t: t * 40),  # long
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.lists(ANY_TEXT, max_size=3),
    st.lists(st.one_of(ANY_TEXT, INVISIBLE_TEXT), max_size=3),
    st.lists(st.one_of(ANY_TEXT, st.integers(), st.none()), max_size=3),
    st.dictionaries(ANY_TEXT, ANY_TEXT, max_size=2),
)
CLAIMS = st.fixed_dictionaries(
    {},
    optional={name: CLAIM_VALUES for name in ("sub", "name", "preferred_username", "email", "scope", "scp", "roles")},
)
BLANK_LETTERS = "\u115f\u1160\u3164\uffa0\u2800"


def _writable(text: str, *, shown: bool = False) -> bool:
    """What the audit log (orjson), PostgreSQL and the console can take, and reads as stored: no
    control, format, surrogate, private-use or unassigned character, line or paragraph separator,
    or filler. In ``shown`` text a zero-width joiner between two emoji (👩‍💻) only builds a picture."""
    try:
        orjson.dumps(text)
        text.encode("utf-8")
    except (orjson.JSONEncodeError, UnicodeEncodeError):
        return False
    for i, c in enumerate(text):
        if shown and c == "\u200d" and 0 < i < len(text) - 1 and unicodedata.category(text[i + 1]) == "So":
            continue
        if unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"} or c in BLANK_LETTERS:
            return False
    return True


def _visible(text: str) -> bool:
    """At least one letter, digit, punctuation mark or symbol that shows."""
    return any(unicodedata.category(c)[0] in "LNPS" and c not in BLANK_LETTERS for c in text)


def _usable_subject(value) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 255 and _writable(value) and _visible(value)


def _usable_scope_claim(claims) -> bool:
    value = claims.get("scope") if "scope" in claims else claims.get("scp")
    if value is None:
        return True
    if isinstance(value, str):
        words = value.split(" ") if value else []
    elif "scope" not in claims and isinstance(value, list) and all(isinstance(v, str) for v in value):
        words = value  # a list only as scp
    else:
        return False
    return all(_writable(w) and _visible(w) for w in words) and sum(map(len, words)) <= 4096


@settings(max_examples=400, deadline=None, database=None)
@given(claims=CLAIMS)
def test_a_token_is_refused_or_every_string_taken_from_it_can_be_written(claims):
    try:
        text = read_claims(claims)
    except UnusableClaim as exc:
        assert not (_usable_subject(claims.get("sub")) and _usable_scope_claim(claims))
        assert ("sub" in str(exc)) == (not _usable_subject(claims.get("sub")))
        assert _writable(str(exc))
        return
    assert _usable_subject(claims.get("sub")) and _usable_scope_claim(claims)
    assert text.subject == claims["sub"]  # a subject is never altered: it is refused or kept
    for shown in (text.name, text.email):
        assert shown is None or (_writable(shown, shown=True) and _visible(shown) and len(shown) <= 255)
    assert all(_writable(scope) and _visible(scope) for scope in text.scopes)
    for name in ("name", "email"):
        given_value = claims.get(name)
        if (
            isinstance(given_value, str)
            and _writable(given_value)
            and _visible(given_value)
            and len(given_value) <= 200
        ):
            assert getattr(text, name) == given_value  # plain text passes unchanged
    if not any(isinstance(claims.get(n), str) and _visible(claims[n][:200]) for n in ("name", "preferred_username")):
        assert text.name == text.subject  # a name that shows nothing falls back to the subject


@pytest.mark.parametrize(
    ("claims", "name", "email"),
    [
        (
            {"name": "Ada \ud800 Lovelace", "email": "ada\udfff@example.test"},
            "Ada \ufffd Lovelace",
            "ada\ufffd@example.test",
        ),
        (
            {"name": "\x1b[31mroot\x1b[0m", "email": "a\x00b@example.test"},
            "\ufffd[31mroot\ufffd[0m",
            "a\ufffdb@example.test",
        ),
        ({"name": "admin\u202egnp.exe"}, "admin\ufffdgnp.exe", None),
        ({"name": "x" * 5000}, "x" * 200, None),
        ({"name": ["Ada"], "preferred_username": {"a": 1}, "email": 7}, "s-1", None),
        ({"name": " \t ", "preferred_username": "ada"}, "ada", None),
        ({"name": "👩‍💻 Ada", "email": "ada@exämple.test"}, "👩‍💻 Ada", "ada@exämple.test"),
        ({"name": "🏳️‍🌈", "email": "\u200b"}, "🏳️‍🌈", None),
        ({"name": "\u2800\u3164\ufe0f", "preferred_username": "\U000e0061\U000e0064"}, "s-1", None),
        (
            {"name": "Bob\u00ad\u2062", "email": "ad\u200dmin@example.test"},
            "Bob\ufffd\ufffd",
            "ad\ufffdmin@example.test",
        ),
    ],
)
def test_display_claims_are_cleaned_never_refused(claims, name, email):
    text = read_claims({"sub": "s-1", **claims})
    assert (text.name, text.email) == (name, email)


@pytest.mark.parametrize(
    ("claims", "words"),
    [
        ({"sub": "a\ud800"}, "sub"),
        ({"sub": "a\x00"}, "sub"),
        ({"sub": "\x1b[2J"}, "sub"),
        ({"sub": "a\u2028b"}, "sub"),
        ({"sub": "\u202eevil"}, "sub"),
        ({"sub": "x" * 256}, "sub"),
        ({"sub": "   "}, "sub"),
        ({"sub": "\u3164"}, "sub"),
        ({"sub": "\ufe0f\ufe0f"}, "sub"),
        ({"sub": "\u00a0\u0301"}, "sub"),
        ({"sub": "user\u200b"}, "sub"),
        ({"sub": "\U000e0075ser"}, "sub"),
        ({"sub": "a\ue000"}, "sub"),
        ({"sub": 5}, "sub"),
        ({"sub": ["s"]}, "sub"),
        ({"sub": "s", "scope": 5}, "scope claim is not a space-separated string"),
        ({"sub": "s", "scope": {"tools": True}}, "scope claim is not a space-separated string"),
        ({"sub": "s", "scp": ["tools", 3]}, "scp claim is neither"),
        ({"sub": "s", "scope": ["tools"]}, "scope claim is not a space-separated string"),
        ({"sub": "s", "scope": []}, "scope claim is not a space-separated string"),
        ({"sub": "s", "scope": "tools \u200b"}, "scope claim holds"),
        ({"sub": "s", "scp": ["tools\ufeff"]}, "scp claim holds"),
        ({"sub": "s", "scope": "tools\ud800"}, "scope claim holds"),
        ({"sub": "s", "scope": "tools\ttool:get_alerts"}, "scope claim holds"),
        ({"sub": "s", "scp": ["tools", "a\x00"]}, "scp claim holds"),
        ({"sub": "s", "scope": "tools "}, "scope claim holds"),
        ({"sub": "s", "scope": "tools  tool:get_alerts"}, "scope claim holds"),
        ({"sub": "s", "scope": "t " * 3000}, "scope claim holds"),
    ],
)
def test_an_unusable_subject_or_scope_claim_refuses_the_token(claims, words):
    with pytest.raises(UnusableClaim) as info:
        read_claims(claims)
    assert words in str(info.value)


# --- scopes exactly as written ----------------------------------------------------------------

SCOPE_MAP = {"weather": ("get_forecast", "get_alerts"), "all-tools": ("*",), "stale": ("uninstalled",)}
# docs/identity.md, read literally for TOOLS and SCOPE_MAP: these strings grant these tools, no other string anything.
DOCUMENTED = {
    "tools": {ALL_TOOLS},
    "tool:get_forecast": {"get_forecast"},
    "tool:get_alerts": {"get_alerts"},
    "tool:word.count": {"word.count"},
    "weather": {"get_forecast", "get_alerts"},
    "all-tools": {ALL_TOOLS},
    "stale": set(),
}
LOOKALIKES = {"o": "оο০ｏ", "l": "ӏ1I", "t": "ţｔ", "s": "ѕ", ":": "：∶;", "_": "＿-", ".": "․"}
NEAR_MISSES = [
    "tool:*",
    "tool:",
    "tool:get_*",
    "tool:*_forecast",
    "tool:get_forecast*",
    "tool:**",
    "*",
    "TOOLS",
    "Tools",
    "tools ",
    " tools",
    "tools\t",
    "tools\u00a0",
    "tool:get_forecast,get_alerts",
    "tool:get_forecast get_alerts",
    "tool: get_forecast",
    "tool:GET_FORECAST",
    "tool:get_forecast\u200b",
    "ｔｏｏｌｓ",
    "tооls",
    "tool:uninstalled",
    "tool:tools",
    "tool:weather",
    "weather*",
    "Weather",
    "tool:all-tools",
    "tool:word_count",
    "tool:word.count.",
    "tools:get_forecast",
    "tool::get_forecast",
    "tool:\ud800",
    "tool:get_forecast\x00",
]


@st.composite
def near_miss(draw) -> str:
    """A documented scope, edited the way a lookalike or a pattern would be."""
    scope = draw(st.sampled_from([*sorted(DOCUMENTED), "tool:", "*"]))
    for edit in draw(
        st.lists(st.sampled_from(["case", "pad", "insert", "lookalike", "glob", "join", "cut"]), min_size=1, max_size=3)
    ):
        at = draw(st.integers(0, len(scope)))
        if edit == "case":
            scope = scope.swapcase() if draw(st.booleans()) else scope.upper()
        elif edit == "pad":
            scope = draw(st.sampled_from([" ", "\t", "\u00a0", "\u3000", "\n"])).join(
                ["", scope, ""][: draw(st.integers(2, 3))]
            )
        elif edit == "insert":
            scope = (
                scope[:at] + draw(st.text(st.characters(exclude_categories=[]), min_size=1, max_size=3)) + scope[at:]
            )
        elif edit == "lookalike":
            spots = [i for i, c in enumerate(scope) if c in LOOKALIKES]
            if spots:
                i = draw(st.sampled_from(spots))
                scope = scope[:i] + draw(st.sampled_from(LOOKALIKES[scope[i]])) + scope[i + 1 :]
        elif edit == "glob":
            scope = scope[:at] + "*" + scope[at:]
        elif edit == "join":
            scope = scope + draw(st.sampled_from([",", ";", "+", "|"])) + draw(st.sampled_from(sorted(DOCUMENTED)))
        else:
            scope = scope[:at]
    return scope


ANY_SCOPE = st.one_of(st.sampled_from(sorted(DOCUMENTED) + NEAR_MISSES), near_miss(), ANY_TEXT)


@settings(max_examples=300, deadline=None, database=None)
@given(scope=ANY_SCOPE)
def test_a_scope_grants_exactly_what_the_documentation_lists_for_that_string(scope):
    assert tool_scopes([scope], SCOPE_MAP, TOOLS) == DOCUMENTED.get(scope, set())


@settings(max_examples=150, deadline=None, database=None)
@given(words=st.lists(ANY_SCOPE, max_size=5), separator=st.sampled_from([" ", "  ", "\t", ",", "\u00a0", "\u3000"]))
def test_a_scope_claim_grants_at_most_what_its_space_separated_scopes_do(words, separator):
    for claim in ({"scope": separator.join(words)}, {"scp": words}, {"scp": separator.join(words)}):
        value = claim.get("scope", claim.get("scp"))
        written = value.split(" ") if isinstance(value, str) else value
        try:
            scopes = read_claims({"sub": "s", **claim}).scopes
        except UnusableClaim:
            continue
        assert tool_scopes(scopes, SCOPE_MAP, TOOLS) <= set().union(*(DOCUMENTED.get(w, set()) for w in written))


@pytest.mark.parametrize("scope", NEAR_MISSES)
def test_a_near_miss_scope_grants_nothing_even_beside_the_scope_map(scope):
    assert tool_scopes([scope, "openid", "email"], SCOPE_MAP, TOOLS) == set()


@settings(max_examples=150, deadline=None, database=None)
@given(scopes=st.lists(st.one_of(ANY_SCOPE, st.sampled_from(sorted(TOOLS))), max_size=4))
def test_a_key_scope_is_matched_exactly_and_only_star_means_every_tool(scopes):
    """Keys: tool names, or ``*`` for all (docs/security.md); no pattern, case or spacing variant."""
    principal = Principal(kind="key", id="k", name="k", scopes=frozenset(scopes))
    for tool in TOOLS:
        assert principal.allows(frozenset({"*", tool})) == ("*" in scopes or tool in scopes)
    if not ({"*"} | TOOLS) & set(scopes):
        assert not any(principal.allows(frozenset({"*", t})) for t in TOOLS)


@settings(max_examples=100, deadline=None, database=None)
@given(keys=st.lists(json_values, max_size=4))
def test_a_jwks_of_any_shape_yields_only_readable_keys(keys):
    usable, unreadable = _usable_keys(keys)
    assert all(isinstance(k, jwt.PyJWK) for k in usable.values())
    assert all(isinstance(kid, str) for kid in unreadable)


# --- key-shaped JWKS entries -------------------------------------------------------------------


def _public_jwk(algorithm, key) -> dict:
    return algorithm.to_jwk(key.public_key(), as_dict=True)


_RSA_2048 = rsa.generate_private_key(public_exponent=65537, key_size=2048)
REAL_JWKS = [
    {**_public_jwk(RSAAlgorithm, _RSA_2048), "alg": "RS256"},
    {**_public_jwk(ECAlgorithm, ec.generate_private_key(ec.SECP256R1())), "alg": "ES256", "use": "sig"},
    {**_public_jwk(OKPAlgorithm, ed25519.Ed25519PrivateKey.generate()), "alg": "EdDSA", "key_ops": ["verify"]},
    _public_jwk(RSAAlgorithm, _RSA_2048),
    _public_jwk(RSAAlgorithm, rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # too short
    _public_jwk(RSAAlgorithm, rsa.generate_private_key(public_exponent=3, key_size=2048)),
    RSAAlgorithm.to_jwk(_RSA_2048, as_dict=True),  # a private key, published by mistake
    *(_public_jwk(ECAlgorithm, ec.generate_private_key(curve)) for curve in (ec.SECP256R1(), ec.SECP384R1())),
    _public_jwk(ECAlgorithm, ec.generate_private_key(ec.SECP521R1())),
    _public_jwk(ECAlgorithm, ec.generate_private_key(ec.SECP256K1())),
    ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True),  # private
    _public_jwk(OKPAlgorithm, ed25519.Ed25519PrivateKey.generate()),
    _public_jwk(OKPAlgorithm, ed448.Ed448PrivateKey.generate()),
    {"kty": "OKP", "crv": "X25519", "x": jwt.utils.base64url_encode(bytes(32)).decode()},
    {},
]
B64 = st.binary(max_size=300).map(lambda b: jwt.utils.base64url_encode(b).decode())
KEY_FIELDS = {
    "kty": st.sampled_from(["RSA", "EC", "OKP", "oct", "rsa", "", "RSA "]),
    "crv": st.sampled_from(["P-256", "P-384", "P-521", "secp256k1", "Ed25519", "Ed448", "X25519", "X448", "P-999"]),
    "alg": st.sampled_from(["none", "None", "RS256", "PS512", "ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519"])
    | st.sampled_from(["HS256", "RSA-OAEP", "ECDH-ES", "unknown", ""]),
    "use": st.sampled_from(["sig", "enc", "", "SIG"]),
    "key_ops": st.sampled_from([["verify"], ["sign"], ["verify", "sign"], ["encrypt"], [], "verify", None]),
    "kid": st.sampled_from(["k1", "k2", "", "\ud800", "\u200b"]),
    # coordinates and moduli of the wrong size, taken from another key, or not base64url at all
    **{name: B64 | st.sampled_from([*(j[name] for j in REAL_JWKS if name in j), "!!", 3]) for name in "xyned"},
}


@st.composite
def key_entry(draw) -> dict:
    """A real JWK (RSA, EC, OKP; public, private, too short) with some fields changed or removed."""
    entry = {**draw(st.sampled_from(REAL_JWKS)), "kid": "k1"}
    for name in draw(st.lists(st.sampled_from(sorted(KEY_FIELDS)), unique=True, max_size=4)):
        if draw(st.booleans()):
            entry[name] = draw(KEY_FIELDS[name])
        else:
            entry.pop(name, None)
    return entry


class KeysOf:
    """An issuer publishing ``keys`` (kid -> PyJWK)."""

    def __init__(self, keys) -> None:
        self.issuer = ISSUER
        self.keys = keys

    async def key(self, kid):
        return self.keys.get(kid)


def _meant_for_signatures(entry) -> bool:
    """``key_ops`` aside: issuers write the private key's ``["sign"]`` on the public key."""
    return (
        isinstance(entry.get("kid"), str)
        and entry.get("use", "sig") == "sig"
        and entry.get("kty") in ("RSA", "EC", "OKP")
    )


@pytest.mark.slow  # hundreds of real keys made and mutated
@settings(max_examples=400, deadline=None, database=None)
@given(
    entries=st.lists(key_entry(), min_size=1, max_size=3),
    alg=st.sampled_from(sorted(ASYMMETRIC)),
    signature=st.sampled_from([0, 1, 64, 96, 114, 132, 128, 256, 512]).flatmap(
        lambda n: st.binary(min_size=n, max_size=n)
    ),
)
async def test_a_key_shaped_entry_is_used_or_skipped_and_a_token_against_it_is_never_a_crash(entries, alg, signature):
    """Whatever PyJWT makes of an entry, the JWKS read goes on: the entry is a public key that is
    used, or a signing key that is named as skipped; and a token checked against a used key is
    verified or refused, never a crash."""
    usable, unreadable = _usable_keys(entries)
    meant = [e["kid"] for e in entries if _meant_for_signatures(e)]
    assert set(usable) | set(unreadable) == set(meant)
    for key in usable.values():
        assert not hasattr(key.key, "private_bytes")  # never a private key
        if key.key_type == "RSA":
            assert key.key.key_size >= 2048
    verifier = TokenVerifier({ISSUER: KeysOf(usable)}, ASYMMETRIC, 30, 8000)
    header = jwt.utils.base64url_encode(orjson.dumps({"alg": alg, "kid": "k1", "typ": "JWT"})).decode()
    now = int(time.time())
    payload = {"iss": ISSUER, "sub": "s", "aud": "api://x", "iat": now, "exp": now + 60}
    body = jwt.utils.base64url_encode(orjson.dumps(payload)).decode()
    token = f"{header}.{body}.{jwt.utils.base64url_encode(signature).decode()}"
    with pytest.raises(TokenRefused) as refused:
        await verifier.verify(token, "api://x")
    reason = refused.value.reason
    assert reason in {"token_key", "token_algorithm", "token_signature", "token_invalid", "token_malformed"}
    assert (reason == "token_key") == ("k1" not in usable)
