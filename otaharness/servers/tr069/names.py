"""Names a client gives the ACS: file names (which become paths under the file store and URLs in
Download RPCs), group names, device ids, batch ids in URL paths.

A file name is refused when it is empty, longer than :data:`MAX_FILE_NAME_BYTES` in UTF-8, a dot
segment (``.`` or ``..``), or holds a path separator (``/``, ``\\``), a control character
(Unicode category Cc: NUL, C0, DEL, C1) or a lone surrogate (not UTF-8 at all) — checked on the
name as given and on its percent-decoding (``%2E%2E``, ``a%2Fb``), since the name travels in
URLs. Every refusal is a :class:`InvalidName` (a ``ValueError``: the admin API's 400) that says
what is wrong.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MAX_FILE_NAME_BYTES = 255  # NAME_MAX of Linux file systems; TargetFileName allows 256 characters
MAX_GROUP_NAME = 255
# A device id is OUI-ProductClass-Serial with each part percent-encoded: 64 characters each
# (cwmp-1-*.xsd) can take 64 x 12 characters once encoded. The admin API's request line is
# made long enough to carry the longest (server.ADMIN_MAX_LINE).
MAX_DEVICE_ID = 4096
MAX_BATCH_ID = 2**63 - 1  # SQLite INTEGER
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # Cc and lone surrogates
_SEPARATORS = re.compile(r"[/\\]")
_BATCH_ID = re.compile(r"[0-9]{1,19}")


class InvalidName(ValueError):
    """A name or id the ACS refuses (HTTP 400 on the admin API)."""


def _decodings(name: str) -> list[str]:
    """``name`` and its successive percent-decodings (a proxy or a CPE may decode again)."""
    forms = [name]
    for _ in range(3):
        decoded = unquote(forms[-1])  # invalid UTF-8 escapes decode to U+FFFD
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    return forms


def text_problem(value: str, what: str, max_length: int) -> str | None:
    """Why ``value`` cannot be a name of ``what`` (None: it can)."""
    if not value:
        return f"{what} must not be empty"
    if len(value) > max_length:
        return f"{what} is {len(value)} characters long; at most {max_length}"
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        return (f"{what} holds the control or surrogate character U+{ord(bad.group()):04X} "
                f"at position {bad.start()}")
    return None


def file_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a stored file (None: it can)."""
    if not isinstance(name, str):
        return "a file name must be a string"
    problem = text_problem(name, "a file name", MAX_FILE_NAME_BYTES)
    if problem is not None:
        return problem
    size = len(name.encode("utf-8"))
    if size > MAX_FILE_NAME_BYTES:
        return f"a file name is {size} bytes long in UTF-8; at most {MAX_FILE_NAME_BYTES}"
    for form in _decodings(name):
        decoded = "" if form == name else f" (percent-decoded: {form[:80]!r})"
        if form in (".", ".."):
            return f"a file name must not be a dot segment{decoded}"
        if _SEPARATORS.search(form):
            return f"a file name must not hold a path separator, / or \\{decoded}"
        bad = _FORBIDDEN.search(form)
        if bad is not None:
            return (f"a file name must not hold the control character "
                    f"U+{ord(bad.group()):04X}{decoded}")
    return None


def check_file_name(name: str) -> str:
    problem = file_name_problem(name)
    if problem is not None:
        raise InvalidName(f"{problem}: {name[:80]!r}")
    return name


def check_text(value: str, what: str, max_length: int) -> str:
    problem = text_problem(value, what, max_length)
    if problem is not None:
        raise InvalidName(f"{problem}: {value[:80]!r}")
    return value


def parse_batch_id(text: str) -> int:
    """A batch id from a URL path: decimal digits, 0 to 2**63-1 (else :class:`InvalidName`)."""
    if not _BATCH_ID.fullmatch(text) or int(text) > MAX_BATCH_ID:
        raise InvalidName(f"a batch id is an integer from 1 to {MAX_BATCH_ID}, not {text[:40]!r}")
    return int(text)
