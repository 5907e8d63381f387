"""JSON Schemas: the device-type document (ours: OLT never published one), the request bodies,
and the checks a type's own schema fragments impose on devices' configuration and attributes.

One source: the same dicts validate requests here and appear in the OpenAPI document.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema_specifications import REGISTRY as SPECIFICATIONS
from referencing import Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from otaharness.servers.olt.errors import InvalidDocument

SLOT_KINDS = ("firmware", "bootloader", "configuration")
FRAGMENT_SECTIONS = ("configuration", "attributes", "events", "actions")
# Fragments of these sections are applied inside one object schema (section_schema); those of
# events and actions each on its own (validate_named_payload).
APPLIED_AS_SECTION = ("configuration", "attributes")
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# A reporting rule names one declared configuration or attribute field, or a field inside it.
REPORTING_PATH_PATTERN = r"^\$\.(configuration|attributes)(\.[A-Za-z_][A-Za-z0-9_]{0,63}){1,8}$"
URN_PATTERN = r"^urn:[A-Za-z0-9][A-Za-z0-9-]{0,31}:\S+$"
TIME_OF_DAY_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"

INSTALLATION_STATUSES = ("scheduled", "downloading", "downloaded", "installing", "succeeded",
                         "failed", "canceled")
JSON_LIMIT = 64 * 1024  # bytes of a JSON request body
MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 100

# Query parameters (the server checks each before looking anything up; 400 otherwise).
PAGE_QUERY: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 0}
PAGE_SIZE_QUERY: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE,
                                   "default": 10}
TIMESERIES_PATH_QUERY: dict[str, Any] = {"type": "string", "pattern": REPORTING_PATH_PATTERN}
TIME_BOUND_QUERY: dict[str, Any] = {
    "description": "unix seconds (beyond a float's range: no bound) or an RFC 3339 date-time",
    "anyOf": [{"type": "number"}, {"type": "string", "format": "date-time"}]}
INSTALLATION_STATUS_QUERY: dict[str, Any] = {"enum": list(INSTALLATION_STATUSES)}

_TEXT: dict[str, Any] = {"type": "string", "maxLength": 2000}
_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 200}

DEVICE_TYPE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:otaharness:olt:device-type",
    "title": "OLT device type document",
    "type": "object",
    "required": ["name", "schema"],
    "additionalProperties": False,
    "properties": {
        "name": _NAME,
        "manufacturer": _NAME,
        "model": _NAME,
        "description": _TEXT,
        "categories": {"type": "array", "maxItems": 100,
                       "items": {"type": "string", "pattern": URN_PATTERN, "maxLength": 200}},
        "reportingRules": {
            "type": "array", "maxItems": 100,
            "items": {
                "type": "object", "required": ["path", "reportTo"], "additionalProperties": False,
                "properties": {
                    "path": {"type": "string", "pattern": REPORTING_PATH_PATTERN},
                    "reportTo": {"type": "array", "minItems": 1, "uniqueItems": True,
                                 "items": {"enum": ["timeseries"]}},
                },
            },
        },
        "schema": {
            "type": "object", "additionalProperties": False,
            "properties": {section: {"$ref": "#/$defs/fragments"} for section in FRAGMENT_SECTIONS},
        },
        "slots": {
            "type": "object",
            "propertyNames": {"enum": list(SLOT_KINDS)},
            "additionalProperties": {
                "type": "object", "required": ["name"], "additionalProperties": False,
                "properties": {"name": _NAME, "description": _TEXT,
                               "maxSize": {"type": "integer", "minimum": 1}},
            },
        },
    },
    "$defs": {
        # Each field is a JSON Schema fragment; `property` ties it to a semantic URN
        # (e.g. an LwM2M resource). The fragments themselves are checked against the
        # 2020-12 meta-schema in code (a $ref to the meta-schema would need a network fetch).
        "fragments": {
            "type": "object", "maxProperties": 200,
            "propertyNames": {"pattern": NAME_PATTERN},
            "additionalProperties": {
                "type": "object",
                "properties": {"property": {"type": "string", "pattern": URN_PATTERN}},
            },
        },
    },
}

TENANT_CREATE: dict[str, Any] = {
    "type": "object", "required": ["name"], "additionalProperties": False,
    "properties": {"name": _NAME},
}

FIRMWARE_CREATE: dict[str, Any] = {
    "type": "object", "required": ["name", "version"], "additionalProperties": False,
    "properties": {"name": _NAME, "version": {"type": "string", "minLength": 1, "maxLength": 64},
                   "description": _TEXT, "kind": {"enum": list(SLOT_KINDS)}},
}

_INFO_FIELDS = {"name": _NAME, "description": _TEXT,
                "tags": {"type": "array", "maxItems": 50, "items": _NAME}}

DEVICE_CREATE: dict[str, Any] = {
    "type": "object", "required": ["info"], "additionalProperties": False,
    "properties": {
        "info": {
            "type": "object", "required": ["name", "deviceTypeId"], "additionalProperties": False,
            "properties": {**_INFO_FIELDS, "deviceTypeId": {"type": "string", "minLength": 1},
                           "connectedBy": {"type": "string", "minLength": 1}},
        },
        "configuration": {"type": "object"},
        "attributes": {"type": "object"},
    },
}

DEVICE_PATCH: dict[str, Any] = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "properties": {
        "info": {"type": "object", "additionalProperties": False, "properties": _INFO_FIELDS},
        "configuration": {"type": "object"},
    },
}

ACTION_CREATE: dict[str, Any] = {
    "type": "object", "required": ["action"], "additionalProperties": False,
    "properties": {"action": {"type": "string", "pattern": NAME_PATTERN}, "payload": {},
                   "description": _TEXT},
}

INSTALLATION_CREATE: dict[str, Any] = {
    "type": "object", "required": ["firmwareId", "slot"], "additionalProperties": False,
    "properties": {
        "firmwareId": {"type": "string", "minLength": 1},
        "slot": {"enum": list(SLOT_KINDS)},
        "schedule": {"type": "object", "required": ["startAt"], "additionalProperties": False,
                     "properties": {"startAt": {"type": "string", "format": "date-time"}}},
        # A daily UTC window in which writing into the device may begin (hawkBit's
        # maintenanceWindow, simplified to times of day). end < start spans midnight.
        "maintenanceWindow": {
            "type": "object", "required": ["start", "end"], "additionalProperties": False,
            "properties": {"start": {"type": "string", "pattern": TIME_OF_DAY_PATTERN},
                           "end": {"type": "string", "pattern": TIME_OF_DAY_PATTERN}},
        },
    },
}

REPORTED_STATUSES = ("downloading", "downloaded", "installing", "succeeded", "failed")

INSTALLATION_PATCH: dict[str, Any] = {
    "type": "object", "required": ["status"], "additionalProperties": False,
    "properties": {
        "status": {"enum": list(REPORTED_STATUSES)},
        "progress": {"type": "object", "required": ["cnt", "of"], "additionalProperties": False,
                     "properties": {"cnt": {"type": "integer", "minimum": 0},
                                    "of": {"type": "integer", "minimum": 1}}},
        "details": {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 2000}},
    },
}

FORMATS = FormatChecker()


def validate(document: Any, schema: dict[str, Any], what: str) -> None:
    """Raise InvalidDocument naming the first offending place (deepest error first).

    ``$ref`` resolves only inside ``schema`` and to the JSON Schema meta-schemas: nothing is ever
    retrieved (jsonschema's default registry would fetch http:// and file:// URIs a tenant's
    device type names). A reference that does not resolve is the type's fault: 422, not 500
    (device types are checked for them when created; this covers any stored before)."""
    validator = Draft202012Validator(schema, format_checker=FORMATS, registry=SPECIFICATIONS)
    try:
        errors = sorted(validator.iter_errors(document),
                        key=lambda e: (-len(e.absolute_path), e.message))
    except Unresolvable as exc:
        raise InvalidDocument(f"{what}: the device type's schema has a reference that does not "
                              f"resolve ({type(exc).__name__})") from None
    if errors:
        error = errors[0]
        pointer = "/" + "/".join(str(part) for part in error.absolute_path)
        raise InvalidDocument(f"{what}: {error.message} (at {pointer})", extra={"pointer": pointer})


def dangling_reference(root: dict[str, Any], schema: Any) -> str | None:
    """The first ``$ref``/``$dynamicRef`` in ``schema`` (``root`` itself or a subschema of it)
    that does not resolve against ``root`` and the meta-schemas to a schema, else None (a
    reference to, say, ``#/properties/x/enum`` resolves to a list, which validation would trip
    on). Nothing is retrieved."""
    resolver = SPECIFICATIONS.resolver_with_root(DRAFT202012.create_resource(root))
    start: Resource[Any] = DRAFT202012.create_resource(schema)
    stack = [(start, resolver.in_subresource(start) if schema is not root else resolver)]
    while stack:
        resource, scope = stack.pop()
        contents = resource.contents
        if isinstance(contents, dict):
            for keyword in ("$ref", "$dynamicRef"):
                reference = contents.get(keyword)
                if isinstance(reference, str):
                    try:
                        target = scope.lookup(reference).contents
                        if not isinstance(target, (dict, bool)):
                            return reference
                        Draft202012Validator.check_schema(target)
                    except Exception:  # Unresolvable, a URI it cannot parse, not a schema
                        return reference
        stack.extend((child, scope.in_subresource(child)) for child in resource.subresources())
    return None


def validate_device_type(document: Any) -> None:
    """Our document schema, then each fragment against the JSON Schema 2020-12 meta-schema,
    then each fragment's references (they must resolve where the fragment is applied: inside
    the section's object schema for configuration and attributes, on its own for events and
    actions), then the cross references (reporting paths must name declared fields)."""
    validate(document, DEVICE_TYPE_SCHEMA, "device type")
    sections = document["schema"]
    for section, fragments in sections.items():
        for name, fragment in fragments.items():
            pointer = f"/schema/{section}/{name}"
            try:
                Draft202012Validator.check_schema(fragment)
            except SchemaError as exc:
                raise InvalidDocument(f"device type: {pointer} is not a JSON Schema: {exc.message}",
                                      extra={"pointer": pointer}) from None
            root = section_schema(document, section) if section in APPLIED_AS_SECTION else fragment
            reference = dangling_reference(root, fragment)
            if reference is not None:
                raise InvalidDocument(
                    f"device type: {pointer} refers to {reference[:200]!r}, which does not resolve "
                    "to a schema (references stay inside the document; nothing is fetched)",
                    extra={"pointer": pointer})
    for index, rule in enumerate(document.get("reportingRules", [])):
        _, section, field, *_ = rule["path"].split(".")
        if field not in sections.get(section, {}):
            raise InvalidDocument(
                f"device type: reporting rule {rule['path']} names no declared {section} field",
                extra={"pointer": f"/reportingRules/{index}/path"})


def section_schema(type_document: dict[str, Any], section: str) -> dict[str, Any]:
    """The object schema of a device's configuration or attributes: the declared fragments,
    nothing else (unknown fields are refused, so a typo cannot pass silently)."""
    return {"type": "object", "additionalProperties": False,
            "properties": type_document["schema"].get(section, {})}


def validate_report(type_document: dict[str, Any], section: str, values: Any, what: str) -> None:
    validate(values, section_schema(type_document, section), what)


def validate_named_payload(type_document: dict[str, Any], section: str, name: str,
                           payload: Any, what: str) -> None:
    """An action's or event's payload against the fragment declared under its name."""
    fragment = type_document["schema"].get(section, {}).get(name)
    if fragment is None:
        raise InvalidDocument(f"{what}: the device type declares no {section[:-1]} {name!r}")
    validate(payload, fragment, what)
