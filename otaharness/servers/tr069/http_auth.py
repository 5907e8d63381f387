"""HTTP Basic (RFC 7617) and Digest (RFC 7616, MD5, qop=auth) for CWMP, both directions.

TR-069 §3.2.2 / §3.4.4: the CPE authenticates to the ACS with Basic or Digest; the ACS
authenticates its Connection Request GET to the CPE with Digest; file servers may ask for
either. Used by the ACS, its file server and the CPE emulator (client and server side).

Pure functions plus a small :class:`DigestVerifier` that remembers the nonces it issued; the
caller supplies randomness (``random.Random``) so runs replay.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field


class AuthError(ValueError):
    """A malformed Authorization / WWW-Authenticate header."""


_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,]*)\s*,?')


def parse_auth_params(text: str) -> dict[str, str]:
    """``key=value, key="quoted"`` pairs of a Digest header (names lower-cased)."""
    params: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _PARAM.match(text, position)
        if match is None or match.end() == position:
            raise AuthError(f"cannot parse auth parameters at {text[position:position + 20]!r}")
        value = match.group(3) if match.group(3) is not None else match.group(2)
        params[match.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        position = match.end()
    return params


def split_scheme(header: str) -> tuple[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), rest.strip()


def _bytes(text: str) -> bytes:
    # Header values arrive as UTF-8 with surrogate escapes for other bytes: hash what was sent.
    return text.encode("utf-8", "surrogateescape")


def _md5(text: str) -> str:
    return hashlib.md5(_bytes(text)).hexdigest()


def digest_response(*, username: str, password: str, realm: str, method: str, uri: str,
                    nonce: str, nc: str, cnonce: str, qop: str = "auth") -> str:
    """The ``response`` value of RFC 7616 §3.4.1 (MD5, qop auth; legacy RFC 2069 if no qop)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    if not qop:
        return _md5(f"{ha1}:{nonce}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def basic_authorization(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def parse_basic(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError("Basic credentials are not base64 of UTF-8") from None
    username, colon, password = decoded.partition(":")
    if not colon:
        raise AuthError("Basic credentials without ':'")
    return username, password


@dataclass
class DigestClient:
    """Client side: answers a challenge. ``fixed_nc`` reproduces cwmp-sim (always 00000001)."""

    username: str
    password: str
    rng: random.Random
    fixed_nc: bool = False
    _challenge: dict[str, str] | None = None
    _count: int = 0

    def accept_challenge(self, www_authenticate: str) -> bool:
        """Remember a Digest challenge; False if the header offers no Digest."""
        for challenge in _split_challenges(www_authenticate):
            scheme, rest = split_scheme(challenge)
            if scheme == "digest":
                self._challenge = parse_auth_params(rest)
                self._count = 0
                return True
        return False

    @property
    def has_challenge(self) -> bool:
        return self._challenge is not None

    def authorization(self, method: str, uri: str) -> str:
        if self._challenge is None:
            raise AuthError("no Digest challenge received yet")
        challenge = self._challenge
        self._count = 1 if self.fixed_nc else self._count + 1
        nc = f"{self._count:08x}"
        cnonce = f"{self.rng.getrandbits(64):016x}"
        qop = "auth" if "auth" in challenge.get("qop", "").split(",") else ""
        response = digest_response(username=self.username, password=self.password,
                                   realm=challenge.get("realm", ""), method=method, uri=uri,
                                   nonce=challenge.get("nonce", ""), nc=nc, cnonce=cnonce, qop=qop)
        parts = [f'username="{self.username}"', f'realm="{challenge.get("realm", "")}"',
                 f'nonce="{challenge.get("nonce", "")}"', f'uri="{uri}"',
                 f'response="{response}"', "algorithm=MD5"]
        if qop:
            parts += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
        if "opaque" in challenge:
            parts.append(f'opaque="{challenge["opaque"]}"')
        return "Digest " + ", ".join(parts)


def _split_challenges(header: str) -> list[str]:
    # Several challenges may share one header: split before each "<scheme> " token.
    return [part for part in re.split(r",\s*(?=(?:Basic|Digest)\s)", header, flags=re.I) if part]


@dataclass
class DigestVerifier:
    """Server side. ``strict_nc`` refuses a nonce count that does not rise (replays); off by
    default because cwmp-sim sends nc=00000001 every time (fact sheet §8)."""

    realm: str
    rng: random.Random
    strict_nc: bool = False
    max_nonces: int = 10000
    _nonces: dict[str, int] = field(default_factory=dict)  # nonce -> highest nc seen

    def challenge(self, *, stale: bool = False) -> str:
        nonce = f"{self.rng.getrandbits(128):032x}"
        if len(self._nonces) >= self.max_nonces:
            self._nonces.pop(next(iter(self._nonces)))  # oldest first: dicts keep order
        self._nonces[nonce] = 0
        return (f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, nonce="{nonce}"'
                + (", stale=true" if stale else ""))

    def verify(self, authorization: str, method: str,
               password_of: Callable[[str], str | None]) -> str | None:
        """The authenticated user name, or None (wrong credentials, unknown nonce, replay)."""
        scheme, rest = split_scheme(authorization)
        if scheme != "digest":
            return None
        try:
            params = parse_auth_params(rest)
        except AuthError:
            return None
        username, nonce = params.get("username", ""), params.get("nonce", "")
        password = password_of(username)
        if password is None or nonce not in self._nonces or params.get("realm") != self.realm:
            return None
        qop = params.get("qop", "")
        nc_text = params.get("nc", "")
        expected = digest_response(username=username, password=password, realm=self.realm,
                                   method=method, uri=params.get("uri", ""), nonce=nonce,
                                   nc=nc_text, cnonce=params.get("cnonce", ""), qop=qop)
        if params.get("response", "").lower() != expected:
            return None
        try:
            nc = int(nc_text or "0", 16)
        except ValueError:
            return None
        if self.strict_nc and nc <= self._nonces[nonce]:
            return None
        self._nonces[nonce] = max(nc, self._nonces[nonce])
        return username


@dataclass
class ServerAuth:
    """What a server asks of its clients: ``mode`` none / basic / digest / any (Basic or Digest
    accepted, Digest challenged). Returns the user name, "" when no auth is configured."""

    mode: str
    realm: str
    users: dict[str, str]
    rng: random.Random
    strict_nc: bool = False
    verifier: DigestVerifier = field(init=False)

    MODES = ("none", "basic", "digest", "any")

    def __post_init__(self) -> None:
        if self.mode not in self.MODES:
            raise ValueError(f"auth mode must be one of {self.MODES}, not {self.mode!r}")
        self.verifier = DigestVerifier(self.realm, self.rng, strict_nc=self.strict_nc)

    def check(self, authorization: str | None, method: str) -> str | None:
        if self.mode == "none":
            return ""
        if not authorization:
            return None
        scheme, rest = split_scheme(authorization)
        if scheme == "basic" and self.mode in ("basic", "any"):
            try:
                username, password = parse_basic(rest)
            except AuthError:
                return None
            known = self.users.get(username)
            return username if known is not None and _same(known, password) else None
        if scheme == "digest" and self.mode in ("digest", "any"):
            return self.verifier.verify(authorization, method, self.users.get)
        return None

    def challenge(self) -> str:
        if self.mode == "basic":
            return f'Basic realm="{self.realm}"'
        return self.verifier.challenge()


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(_bytes(a), _bytes(b))
