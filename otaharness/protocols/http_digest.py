"""HTTP Basic (RFC 7617) and Digest (RFC 7616: MD5, qop=auth), client and server side, for CWMP.

TR-069 §3.2.2 / §3.4.4: the CPE authenticates to the ACS with Basic or Digest; the ACS
authenticates its Connection Request GET to the CPE with Digest; file servers may ask for
either. Used by the ACS, its file server and the CPE emulator, so it lives with the codecs: no
I/O, no server imports.

Secrets come from the OS CSPRNG (``secrets``), never a scenario seed: a nonce another run can
predict lets a captured header be replayed. The server side (:class:`DigestVerifier`) defends
against replays three ways: nonces expire (a valid response on an expired or forgotten nonce is
answered with a ``stale=true`` challenge, RFC 7616 §3.3), the nonce count must rise (§3.4.5:
"the server ... can detect replays" by it), and the ``uri`` must be the request's own
(§3.4.6). A client that reuses ``nc=00000001`` (cwmp-sim does) is told apart
(:attr:`DigestOutcome.count_reused`) so its caller can let it through for the devices it allows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

# Authorization headers in logs: the one redactor's rules (a Digest response cut to 4 hex digits)
from otaharness.runtime.redaction import authorization_for_log as redacted  # noqa: F401

NONCE_LIFETIME = 300.0  # seconds a nonce may be used (then stale=true)
MAX_NONCES = 10000  # remembered at once; the oldest are forgotten first (then stale=true)


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


def _split_challenges(header: str) -> list[str]:
    # Several challenges may share one header: split before each "<scheme> " token.
    return [part for part in re.split(r",\s*(?=(?:Basic|Digest)\s)", header, flags=re.I) if part]


def is_stale(www_authenticate: str) -> bool:
    """Whether the header's Digest challenge says ``stale=true`` (same credentials, new nonce)."""
    for challenge in _split_challenges(www_authenticate):
        scheme, rest = split_scheme(challenge)
        if scheme == "digest":
            try:
                return parse_auth_params(rest).get("stale", "").lower() == "true"
            except AuthError:
                return False
    return False


@dataclass
class DigestClient:
    """Client side: answers a challenge. ``fixed_nc`` reproduces cwmp-sim (always 00000001)."""

    username: str
    password: str
    fixed_nc: bool = False
    _challenge: dict[str, str] | None = None
    _count: int = 0

    def accept_challenge(self, www_authenticate: str) -> bool:
        """Remember a Digest challenge (a ``stale=true`` one too: same credentials, new nonce);
        False if the header offers no Digest."""
        for challenge in _split_challenges(www_authenticate):
            scheme, rest = split_scheme(challenge)
            if scheme == "digest":
                try:
                    self._challenge = parse_auth_params(rest)
                except AuthError:
                    return False
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
        cnonce = secrets.token_hex(8)
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


@dataclass(frozen=True)
class DigestOutcome:
    """What a Digest ``Authorization`` proved. ``username`` is set when the credentials are
    right; then ``stale`` (the nonce expired or is not ours: re-challenge with stale=true) or
    ``count_reused`` (the nonce count did not rise: a replay, or a client like cwmp-sim) may
    still keep the request out. ``accepted`` is the plain yes."""

    username: str | None = None
    stale: bool = False
    count_reused: bool = False

    @property
    def accepted(self) -> bool:
        return self.username is not None and not self.stale and not self.count_reused


REFUSED = DigestOutcome()


@dataclass
class _Nonce:
    issued: float
    highest_count: int = 0


@dataclass
class DigestVerifier:
    """Server side: issues nonces (CSPRNG) and checks responses to them.

    ``now`` is the clock nonce lifetimes are measured on (a scenario's virtual clock);
    ``strict_nc`` off accepts any nonce count (then a header can be replayed until its nonce
    expires): for a whole server that only talks to such clients, never the default."""

    realm: str
    now: Callable[[], float] = time.monotonic
    nonce_lifetime: float = NONCE_LIFETIME
    strict_nc: bool = True
    max_nonces: int = MAX_NONCES
    _nonces: OrderedDict[str, _Nonce] = field(default_factory=OrderedDict)

    def challenge(self, *, stale: bool = False) -> str:
        nonce = secrets.token_hex(16)
        self._forget_expired()
        while len(self._nonces) >= self.max_nonces:
            self._nonces.popitem(last=False)  # oldest first
        self._nonces[nonce] = _Nonce(self.now())
        return (f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, nonce="{nonce}"'
                + (", stale=true" if stale else ""))

    def verify(self, authorization: str, method: str, uri: str,
               password_of: Callable[[str], str | None]) -> DigestOutcome:
        """Check a Digest header sent with ``method`` on request-target ``uri``. A nonce count
        is recorded only when the request is accepted."""
        scheme, rest = split_scheme(authorization)
        if scheme != "digest":
            return REFUSED
        try:
            params = parse_auth_params(rest)
        except AuthError:
            return REFUSED
        username, nonce = params.get("username", ""), params.get("nonce", "")
        password = password_of(username)
        if (password is None or params.get("realm") != self.realm
                or params.get("qop") != "auth"  # without qop there is no nonce count at all
                or params.get("algorithm", "MD5").upper() != "MD5"
                or params.get("uri") != uri):
            return REFUSED
        nc_text = params.get("nc", "")
        if not re.fullmatch(r"[0-9A-Fa-f]{8}", nc_text):
            return REFUSED
        expected = digest_response(username=username, password=password, realm=self.realm,
                                   method=method, uri=uri, nonce=nonce, nc=nc_text,
                                   cnonce=params.get("cnonce", ""), qop="auth")
        if not hmac.compare_digest(_bytes(params.get("response", "").lower()), _bytes(expected)):
            return REFUSED
        self._forget_expired()
        issued = self._nonces.get(nonce)
        if issued is None:  # expired, forgotten, or never ours: right password, new nonce
            return DigestOutcome(username, stale=True)
        count = int(nc_text, 16)
        if self.strict_nc and count <= issued.highest_count:
            return DigestOutcome(username, count_reused=True)
        issued.highest_count = max(count, issued.highest_count)
        return DigestOutcome(username)

    def _forget_expired(self) -> None:
        oldest_valid = self.now() - self.nonce_lifetime
        while self._nonces:
            nonce, record = next(iter(self._nonces.items()))
            if record.issued >= oldest_valid:
                break
            del self._nonces[nonce]


@dataclass(frozen=True)
class AuthOutcome:
    """A server's verdict on a request's credentials: ``user`` ("" when no auth is configured,
    None when refused); ``stale`` / ``count_reused`` as in :class:`DigestOutcome`."""

    user: str | None
    stale: bool = False
    count_reused: bool = False

    @property
    def accepted(self) -> bool:
        return self.user is not None and not self.stale and not self.count_reused


@dataclass
class ServerAuth:
    """What a server asks of its clients: ``mode`` none / basic / digest / any (Basic or Digest
    accepted, Digest challenged)."""

    mode: str
    realm: str
    users: dict[str, str]
    now: Callable[[], float] = time.monotonic
    nonce_lifetime: float = NONCE_LIFETIME
    strict_nc: bool = True
    verifier: DigestVerifier = field(init=False)

    MODES = ("none", "basic", "digest", "any")

    def __post_init__(self) -> None:
        if self.mode not in self.MODES:
            raise ValueError(f"auth mode must be one of {self.MODES}, not {self.mode!r}")
        self.verifier = DigestVerifier(self.realm, self.now, self.nonce_lifetime,
                                       strict_nc=self.strict_nc)

    def check(self, authorization: str | None, method: str, uri: str) -> AuthOutcome:
        if self.mode == "none":
            return AuthOutcome("")
        if not authorization:
            return AuthOutcome(None)
        scheme, rest = split_scheme(authorization)
        if scheme == "basic" and self.mode in ("basic", "any"):
            try:
                username, password = parse_basic(rest)
            except AuthError:
                return AuthOutcome(None)
            known = self.users.get(username)
            return AuthOutcome(username if known is not None and _same(known, password) else None)
        if scheme == "digest" and self.mode in ("digest", "any"):
            outcome = self.verifier.verify(authorization, method, uri, self.users.get)
            return AuthOutcome(outcome.username, outcome.stale, outcome.count_reused)
        return AuthOutcome(None)

    def challenge(self, *, stale: bool = False) -> str:
        if self.mode == "basic":
            return f'Basic realm="{self.realm}"'
        return self.verifier.challenge(stale=stale)


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(_bytes(a), _bytes(b))
