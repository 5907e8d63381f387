"""The one redactor: what a log, a transcript, an artifact or a report may show of a secret.

Two complementary nets, both applied by :func:`redact`:

* **by shape** (:data:`CREDENTIALS`): ``Authorization`` values (Bearer, Basic, a Digest
  ``response`` kept to its first 4 hex digits so two lines can still be told apart), a bare
  ``Bearer <token>``, PEM private keys (in binary files DER EC keys too), and the value of any JSON/XML/form field whose name says it
  is a secret (``password``, ``token``, ``secret``, ``cupsCred``, ``tcCred``, a TR-069
  ``…Password`` parameter);
* **by value** (:class:`SecretSet`): every secret the runtime issued during a scenario (API and
  station tokens, client secrets, service passwords, session cookies), however it shows up.
  Code that makes a secret calls :func:`remember` (a no-op outside a recorded scenario), so the
  set is exact and costs nothing in ``serve`` or ``emulate``.

:class:`RedactingFilter` redacts log records before any handler sees them; :func:`redact_bytes`
serves byte logs (a container's); :func:`scrub_file` masks secrets in any file an artifact folder
keeps, binary ones (SQLite) with same-length masks so they stay readable.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

MARK = "<redacted>"

# A field named like a secret: JSON `"name": "value"`, XML `<Name>…Password</Name><Value …>value`,
# form/query `name=value`. Names are matched case-insensitively on their end.
_SECRET_NAME = r"[A-Za-z0-9_.\-]*(?:password|passwd|secret|token|cupsCred|tcCred|Cred|privateKey|private_key)"
_SECRET_WORDS = ("password", "passwd", "secret", "token", "cred", "privatekey", "private_key")
# Each shape: (words one of which the lower-cased text must hold, pattern whose group 1 is kept).
# The words let a long transcript skip the patterns it cannot match (one pass of `in` each).
CREDENTIALS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("authorization",),
     re.compile(r"(?i)(authorization\s*:\s*(?:(?:bearer|basic)\s+)?)(?!digest\b)[^\s'\"\\,]+")),
    (("bearer",), re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9\-._~+/]{16,}=*")),
    (("response",), re.compile(r"(?i)(response\s*=\s*\"?[0-9a-f]{4})[0-9a-f]{4,}")),
    (("private key",),
     re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(?=-----END [A-Z ]*PRIVATE KEY-----)")),
    (_SECRET_WORDS, re.compile(rf"(?i)(\"{_SECRET_NAME}\"\s*:\s*\")(?:[^\"\\]|\\.)+(?=\")")),
    (("password</name>",),
     re.compile(r"(?i)(<Name>[^<]*Password</Name>\s*<Value[^>]*>)[^<]+(?=</Value>)")),
    (_SECRET_WORDS, re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&\s\"'<]+")),
)

# A run of characters a token is made of: candidates for the by-value net in one pass.
_TOKEN_RUN = re.compile(r"[A-Za-z0-9_\-]{12,}")
_TOKEN_RUN_BYTES = re.compile(rb"[A-Za-z0-9_\-]{12,}")
_TOKEN_ALPHABET = re.compile(r"[A-Za-z0-9_\-]{12,}\Z")
_PEM_KEY_BYTES = re.compile(rb"(-----BEGIN [A-Z ]*PRIVATE KEY-----)([\s\S]*?)(?=-----END [A-Z ]*PRIVATE KEY-----)")
# A DER EC private key (SEC1 ECPrivateKey, alone or inside PKCS#8): version 1, then the private
# scalar as an OCTET STRING of 32 (P-256) or 48 (P-384) bytes. A station's tc.key/cups.key.
_DER_EC_SCALAR = re.compile(rb"\x02\x01\x01\x04(?:\x20(?P<p256>[\s\S]{32})|\x30(?P<p384>[\s\S]{48}))")


class SecretSet:
    """The secrets issued during one scenario, by value. Tokens (the CSPRNG's URL-safe or hex
    characters, 12 or more) are looked up per run of such characters, in one pass whatever their
    number (a fleet's thousands); any other secret (a short password) by plain replacement."""

    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.others: set[str] = set()
        self._token_lengths: list[int] = []
        self._lengths_of = 0  # len(tokens) when _token_lengths was made

    def add(self, value: str | bytes | None) -> None:
        if not value:
            return
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        if _TOKEN_ALPHABET.match(text):
            self.tokens.add(text)
        elif len(text) >= 4:  # shorter is no secret worth the noise of masking it everywhere
            self.others.add(text)

    def __iter__(self):
        yield from self.tokens
        yield from self.others

    def __len__(self) -> int:
        return len(self.tokens) + len(self.others)

    def scrub(self, text: str) -> str:
        if self.tokens:
            text = _TOKEN_RUN.sub(lambda m: self._hide_in_run(m[0], self.tokens, MARK), text)
        for other in self.others:
            if other in text:
                text = text.replace(other, MARK)
        return text

    def scrub_bytes(self, data: bytes, mask: bool = True) -> bytes:
        """``mask``: each secret becomes as many ``*`` (a binary file keeps its layout)."""
        if self.tokens:
            encoded = {token.encode() for token in self.tokens}
            data = _TOKEN_RUN_BYTES.sub(
                lambda m: self._hide_in_run(m[0], encoded, None if mask else MARK.encode()), data)
        for other in self.others:
            secret = other.encode()
            if secret in data:
                data = data.replace(secret, b"*" * len(secret) if mask else MARK.encode())
        return data

    def _hide_in_run(self, run, tokens, mark):
        """The run with every token in it hidden (``mark``, or as many ``*``): the whole run, or
        a token glued to more token characters, found by sliding a window of each token length
        over the run (a few lengths whatever the number of tokens)."""
        def hidden(token):
            return mark if mark is not None else b"*" * len(token)  # a mask only for bytes

        if run in tokens:
            return hidden(run)
        for length in self._lengths():
            if length >= len(run):
                break
            for start in range(len(run) - length + 1):
                if run[start:start + length] in tokens:
                    piece = run[start:start + length]
                    return run.replace(piece, hidden(piece))
        return run

    def _lengths(self) -> list[int]:
        if self._lengths_of != len(self.tokens):  # tokens were added since
            self._token_lengths = sorted({len(token) for token in self.tokens})
            self._lengths_of = len(self.tokens)
        return self._token_lengths


_active: SecretSet | None = None


def remember(secret: str | bytes | None) -> str | bytes | None:
    """Note a secret just issued (a token, a password) so that every artifact of the scenario
    redacts it; returns it. A no-op outside a recorded scenario (``serve``, ``emulate``)."""
    secrets = _active
    if secrets is not None:
        secrets.add(secret)
    return secret


def activate(secrets: SecretSet | None) -> None:
    """The scenario's set (``None``: none); the runtime that owns it calls this."""
    global _active
    _active = secrets


def deactivate(secrets: SecretSet) -> None:
    """Stop remembering into ``secrets`` if that is still the active set."""
    global _active
    if _active is secrets:
        _active = None


def active() -> SecretSet | None:
    return _active


def redact(text: str, secrets: Iterable[str] | SecretSet | None = None) -> str:
    """``text`` with every credential found by shape, and every secret known by value (the
    scenario's set when none is given), replaced by ``<redacted>``."""
    folded = text.lower()
    for words, pattern in CREDENTIALS:
        if any(word in folded for word in words):
            text = pattern.sub(_keep_name, text)
    known = _as_set(secrets)
    return known.scrub(text) if known else text


def _keep_name(match: re.Match) -> str:
    return match[1] + MARK


def _as_set(secrets: Iterable[str] | SecretSet | None) -> SecretSet | None:
    if secrets is None:
        return _active
    if isinstance(secrets, SecretSet):
        return secrets
    made = SecretSet()
    for secret in secrets:
        made.add(secret)
    return made


def redact_bytes(data: bytes, secrets: Iterable[str] | SecretSet | None = None) -> bytes:
    """Bytes of a text log (a container's): as :func:`redact`, undecodable bytes kept."""
    text = data.decode("utf-8", "surrogateescape")
    return redact(text, secrets).encode("utf-8", "surrogateescape")


def authorization_for_log(header: str) -> str:
    """An ``Authorization`` header value fit for a log line (the same rules, without the
    header name): a Digest ``response`` kept to its first 4 hex digits, Basic and Bearer
    credentials replaced."""
    return redact(f"Authorization: {header}").removeprefix("Authorization: ")


class RedactingFilter(logging.Filter):
    """Redacts a record before any handler formats it: its message (arguments merged) and its
    traceback. aiohttp logs a request line it cannot parse raw, and that can be an
    ``Authorization`` header."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def _mask_scalar(match: re.Match) -> bytes:
    scalar = match["p256"] or match["p384"]
    return match[0][:-len(scalar)] + b"\x00" * len(scalar)


def scrub_file(path: Path, secrets: SecretSet | None) -> bool:
    """Mask every secret in a kept file, in place: in a text file everything :func:`redact`
    finds; in a binary one PEM and DER (EC) private keys and known secrets, with same-length
    masks, so a SQLite database stays a database. True when something was masked."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        cleaned = redact(text, secrets or SecretSet()).encode()
    else:
        cleaned = _PEM_KEY_BYTES.sub(lambda m: m[1] + b"*" * len(m[2]), data)
        cleaned = _DER_EC_SCALAR.sub(_mask_scalar, cleaned)
        if secrets:
            cleaned = secrets.scrub_bytes(cleaned)
    if cleaned != data:
        path.write_bytes(cleaned)
        return True
    return False
