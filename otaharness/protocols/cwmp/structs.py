"""Fields-as-data machinery: a CWMP struct or RPC is a frozen dataclass whose fields, in XSD
sequence order, each name their element with :func:`element`. Encoding writes that order;
decoding looks children up by local name, so peers that break the sequence still parse.

Python types map to XSD types: ``str`` -> string, ``int`` -> unsignedInt (or ``allowed``),
``bool`` -> boolean, ``datetime`` -> dateTime, a :class:`Struct` -> nested struct,
``tuple[X, ...]`` -> SOAP-ENC array (or, with ``repeated=True``, repeated sibling elements).
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Collection, TypeVar, get_args, get_origin, get_type_hints

from lxml import etree

from .errors import InvalidArguments
from .namespaces import CWMP_NAMESPACES, SOAP_ENC
from .values import (
    UNSIGNED_INT_RANGE,
    format_boolean,
    format_datetime,
    parse_boolean,
    parse_datetime,
    parse_integer,
)

StructT = TypeVar("StructT", bound="Struct")


@dataclass(frozen=True)
class Wire:
    """Wire facts of one field, as the schema states them."""

    tag: str
    max_length: int | None = None
    pattern: re.Pattern[str] | None = None
    allowed: Collection[int] = UNSIGNED_INT_RANGE
    min_items: int = 0
    max_items: int | None = None
    repeated: bool = False  # sequence written as sibling elements, not as a SOAP-ENC array
    optional: bool = False  # may be absent when decoding (minOccurs="0")


def element(tag: str, *, default: Any = MISSING, **facts: Any) -> Any:
    """Declare a dataclass field carried in child element ``tag``."""
    wire = Wire(tag, **facts)
    if default is MISSING:
        return field(metadata={"wire": wire})
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple default")
    return field(default=default, metadata={"wire": wire})


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    wire: Wire
    kind: type  # str, int, bool, datetime or a Struct subclass
    sequence: bool


_SCALAR_KINDS = (str, int, bool, datetime)
# Complement of XML 1.0 §2.2 Char: control characters and surrogates cannot be sent at all.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_field_cache: dict[type, tuple[_FieldSpec, ...]] = {}


def _is_cwmp_child(node: etree._Element) -> bool:
    # Children are unqualified (elementFormDefault="unqualified"); some devices qualify them.
    if not isinstance(node.tag, str):
        return False
    namespace = etree.QName(node).namespace
    return namespace is None or namespace in CWMP_NAMESPACES


def cwmp_children(node: etree._Element, localname: str) -> list[etree._Element]:
    """Children of ``node`` called ``localname``, unqualified or in a CWMP namespace."""
    return [c for c in node if _is_cwmp_child(c) and etree.QName(c).localname == localname]


class Struct:
    """Base of every CWMP struct and RPC dataclass."""

    TYPE_NAME: ClassVar[str]  # XSD type/element name: array item tag and arrayType

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TYPE_NAME" not in cls.__dict__:
            cls.TYPE_NAME = cls.__name__

    @classmethod
    def field_specs(cls) -> tuple[_FieldSpec, ...]:
        cached = _field_cache.get(cls)
        if cached is None:
            hints = get_type_hints(cls)
            specs = []
            for item in fields(cls):  # type: ignore[arg-type]
                if "wire" not in item.metadata:
                    continue  # carried elsewhere (an attribute), handled by the subclass
                kind, sequence = hints[item.name], False
                if get_origin(kind) is tuple:
                    kind, sequence = get_args(kind)[0], True
                if kind not in _SCALAR_KINDS and not issubclass(kind, Struct):
                    raise TypeError(f"{cls.__name__}.{item.name}: unsupported type {kind!r}")
                specs.append(_FieldSpec(item.name, item.metadata["wire"], kind, sequence))
            cached = _field_cache[cls] = tuple(specs)
        return cached

    # --- validation: strict, for what we send ----------------------------------------------
    def validate(self, path: str = "") -> None:
        """Raise :class:`InvalidArguments` if a value breaks the schema's limits."""
        path = path or self.TYPE_NAME
        for spec in self.field_specs():
            value = getattr(self, spec.name)
            where = f"{path}/{spec.wire.tag}"
            if spec.sequence:
                if not isinstance(value, (tuple, list)):
                    raise InvalidArguments(f"{where}: expected a sequence, got {value!r}")
                if len(value) < spec.wire.min_items:
                    raise InvalidArguments(f"{where}: at least {spec.wire.min_items} item(s) needed")
                if spec.wire.max_items is not None and len(value) > spec.wire.max_items:
                    raise InvalidArguments(f"{where}: at most {spec.wire.max_items} item(s) allowed")
                for index, item in enumerate(value):
                    _validate_value(spec, item, f"{where}[{index}]")
            else:
                _validate_value(spec, value, where)
        try:
            self.check()
        except InvalidArguments as exc:
            raise InvalidArguments(f"{path}: {exc}") from None

    def check(self) -> None:
        """Rules across fields or beyond the per-field facts; overridden where the spec has them."""

    # --- encoding ----------------------------------------------------------------------------
    def fill(self, parent: etree._Element) -> None:
        """Append this struct's fields to ``parent`` as child elements, in XSD order."""
        for spec in self.field_specs():
            value = getattr(self, spec.name)
            if not spec.sequence:
                _encode_value(spec.kind, value, etree.SubElement(parent, spec.wire.tag))
            elif spec.wire.repeated:
                for item in value:
                    _encode_value(spec.kind, item, etree.SubElement(parent, spec.wire.tag))
            else:
                array = etree.SubElement(parent, spec.wire.tag)
                if issubclass(spec.kind, Struct):
                    item_tag, item_type = spec.kind.TYPE_NAME, f"cwmp:{spec.kind.TYPE_NAME}"
                else:
                    item_tag, item_type = "string", "xsd:string"
                array.set(f"{{{SOAP_ENC}}}arrayType", f"{item_type}[{len(value)}]")
                for item in value:
                    _encode_value(spec.kind, item, etree.SubElement(array, item_tag))

    # --- decoding: liberal in order and array counts, strict in types -------------------------
    @classmethod
    def read(cls: type[StructT], node: etree._Element, path: str = "") -> StructT:
        path = path or cls.TYPE_NAME
        children: dict[str, list[etree._Element]] = {}
        for child in node:
            if _is_cwmp_child(child):
                children.setdefault(etree.QName(child).localname, []).append(child)
        values: dict[str, Any] = {}
        for spec in cls.field_specs():
            where = f"{path}/{spec.wire.tag}"
            found = children.get(spec.wire.tag, [])
            if spec.sequence and spec.wire.repeated:
                values[spec.name] = tuple(
                    _decode_value(spec.kind, item, where) for item in found
                )
                continue
            if not found:
                if spec.wire.optional:
                    continue  # the dataclass default applies
                raise InvalidArguments(f"{where}: missing element")
            if len(found) > 1:
                raise InvalidArguments(f"{where}: element appears {len(found)} times")
            if spec.sequence:
                values[spec.name] = _decode_array(spec.kind, found[0], where)
            else:
                values[spec.name] = _decode_value(spec.kind, found[0], where)
        return cls(**values)


def _validate_value(spec: _FieldSpec, value: Any, where: str) -> None:
    kind, wire = spec.kind, spec.wire
    # bool is a subclass of int: an int field must not silently take True/False.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArguments(f"{where}: expected {kind.__name__}, got {value!r}")
    if isinstance(value, Struct):
        value.validate(where)
    elif kind is int and value not in wire.allowed:
        raise InvalidArguments(f"{where}: {value} is out of range")
    elif isinstance(value, str):
        if _NOT_XML_CHAR.search(value):
            raise InvalidArguments(f"{where}: {value!r} holds characters XML 1.0 cannot carry")
        if wire.max_length is not None and len(value) > wire.max_length:
            raise InvalidArguments(f"{where}: longer than {wire.max_length} characters")
        if wire.pattern is not None and not wire.pattern.fullmatch(value):
            raise InvalidArguments(f"{where}: {value!r} does not match {wire.pattern.pattern!r}")


def _encode_value(kind: type, value: Any, node: etree._Element) -> None:
    if isinstance(value, Struct):
        value.fill(node)
    elif kind is bool:
        node.text = format_boolean(value)
    elif kind is datetime:
        node.text = format_datetime(value)
    else:
        node.text = str(value)


def _decode_array(kind: type, node: etree._Element, where: str) -> tuple[Any, ...]:
    # The arrayType count is not checked: genieacs-sim claims [16] for 7 entries.
    if issubclass(kind, Struct):
        items = cwmp_children(node, kind.TYPE_NAME)
    else:
        items = [child for child in node if isinstance(child.tag, str)]
    return tuple(_decode_value(kind, item, f"{where}[{index}]") for index, item in enumerate(items))


def _decode_value(kind: type, node: etree._Element, where: str) -> Any:
    if issubclass(kind, Struct):
        return kind.read(node, where)
    if len(node):
        raise InvalidArguments(f"{where}: expected text, found child elements")
    text = node.text or ""
    try:
        if kind is bool:
            return parse_boolean(text)
        if kind is int:
            return parse_integer(text)
        if kind is datetime:
            return parse_datetime(text)
    except InvalidArguments as exc:
        raise InvalidArguments(f"{where}: {exc}") from None
    return text
