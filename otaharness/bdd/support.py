"""What step modules share: the scenario runtime, ``${name}`` values, durations, JSON matching."""

from __future__ import annotations

import json
import re
from typing import Any

from otaharness.runtime.runtime import Runtime

_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


def ota(context) -> Runtime:
    runtime = getattr(context, "ota", None)
    if runtime is None:
        raise RuntimeError("no otaharness runtime: is otaharness.bdd.environment in environment.py?")
    return runtime


def start_flow(context, flow: str):
    """The flow's back end (started on first use); its endpoint URLs become
    `${endpoint.<name>}` for the scenario's steps."""
    runtime = ota(context)
    service = runtime.run(runtime.service(flow))
    runtime.values.setdefault("endpoint", {}).update(service.endpoints())
    return service


def api_session(runtime: Runtime, endpoint: str) -> Any:
    """An aiohttp session for the API at ``endpoint`` (by name), as an outside client holds it:
    the API's bearer token from the runtime, and over HTTPS the scenario's server CA trusted."""
    import aiohttp

    from otaharness.api_token_option import authorization_headers

    url = runtime.endpoint_url(endpoint)
    trust = runtime.pki().client_context() if url.startswith("https:") else True
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust),
                                 headers=authorization_headers(runtime.token_for(endpoint)))


def lookup(values: dict[str, Any], path: str) -> Any:
    """``a.b.0.c`` in nested dicts and lists."""
    current: Any = values
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise KeyError(f"no value `{path}` (known: {', '.join(sorted(values)) or 'none'})")
    return current


def substitute(text: str, values: dict[str, Any]) -> str:
    """Replace ``${name}`` (dotted paths allowed) with scenario values."""

    def value(match: re.Match) -> str:
        found = lookup(values, match[1].strip())
        return found if isinstance(found, str) else json.dumps(found)

    return _PLACEHOLDER.sub(value, text)


def substitute_in_json(text: str, values: dict[str, Any]) -> str:
    """Like :func:`substitute`, for JSON text: a value inside a string literal is escaped, so
    ``"document": "${jobDocument}"`` holds a JSON-encoded document as one string."""
    out, position, in_string, escaped = [], 0, False, False
    for index, char in enumerate(text):
        if in_string and escaped:
            escaped = False
        elif char == "\\" and in_string:
            escaped = True
        elif char == '"':
            in_string = not in_string
        elif char == "$" and text.startswith("${", index) and index >= position:
            end = text.index("}", index)
            found = lookup(values, text[index + 2:end].strip())
            if in_string:
                found = json.dumps(found if isinstance(found, str) else json.dumps(found))[1:-1]
            else:
                found = json.dumps(found)
            out.append(text[position:index] + found)
            position = end + 1
    out.append(text[position:])
    return "".join(out)


def json_argument(context) -> Any:
    """The step's doc string, with ``${name}`` substituted, parsed as JSON."""
    if context.text is None:
        raise ValueError("this step needs a JSON doc string")
    text = substitute_in_json(context.text, ota(context).values)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the step's doc string is not JSON ({exc}):\n{text}") from exc


def mismatches(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Where ``actual`` does not contain ``expected`` (objects match on the expected keys only),
    each as ``<path>: expected <value>, seen <value>``."""
    here = path or "(top)"
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{here}: expected an object, seen {actual!r}"]
        found = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{path}.{key}".lstrip(".") + ": missing")
            else:
                found += mismatches(value, actual[key], f"{path}.{key}".lstrip("."))
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{here}: expected {expected!r}, seen {actual!r}"]
        found = []
        for index, (item, other) in enumerate(zip(expected, actual)):
            found += mismatches(item, other, f"{path}.{index}".lstrip("."))
        return found
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        return [f"{here}: expected {expected!r}, seen {actual!r}"]
    return []
