"""The Broadband Forum CWMP schemas (``cwmp-1-0.xsd`` … ``cwmp-1-4.xsd``) as validators, for
tests and reports that check whole SOAP envelopes (fact sheet §9).

The schemas import SOAP 1.1 envelope/encoding schemas by URL and include each other by URL;
both are mapped to local files (the SOAP ones ship with the ``xmlschema`` package), so the
network is never used. The validators are lxml's: xmlschema cannot load ``cwmp-1-4.xsd``
(its three ``redefine``s), lxml can.

    schemas = load_schemas(Path("shared/schemas/cwmp"))   # SchemasUnavailable if missing
    problems = validation_errors(schemas, etree.fromstring(envelope_bytes))
"""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

from .errors import UnknownNamespace
from .namespaces import CWMP_1_0, CWMP_1_1, CWMP_1_2, SOAP_ENC, SOAP_ENV

SCHEMA_VERSIONS = ("1-0", "1-1", "1-2", "1-3", "1-4")
# Which schema files check a namespace's messages: CWMP 1.3 and 1.4 keep namespace cwmp-1-2,
# and cwmp-1-4.xsd (which includes 1-3 and 1-2) must accept them too.
SCHEMAS_FOR_NAMESPACE: dict[str, tuple[str, ...]] = {
    CWMP_1_0: ("1-0",), CWMP_1_1: ("1-1",), CWMP_1_2: ("1-2", "1-4")}
_BBF_URL = "http://www.broadband-forum.org/cwmp/cwmp-{}.xsd"


class SchemasUnavailable(RuntimeError):
    """The schema directory or the xmlschema package (the SOAP 1.1 schemas) is missing."""


class _LocalFiles(etree.Resolver):
    """Answers the schemas' import/include URLs with local files."""

    def __init__(self, files: dict[str, Path]) -> None:
        super().__init__()
        self.files = files

    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        path = self.files.get(url)
        return None if path is None else self.resolve_filename(str(path), context)


@functools.cache
def load_schemas(directory: Path) -> dict[str, etree.XMLSchema]:
    """Validators by schema version ("1-0" … "1-4") from the BBF ``cwmp-*.xsd`` files in
    ``directory``."""
    if not directory.is_dir():
        raise SchemasUnavailable(f"BBF CWMP schemas not found at {directory}")
    try:
        import xmlschema
    except ImportError:
        raise SchemasUnavailable("package xmlschema (ships the SOAP 1.1 envelope/encoding "
                                 "schemas) not installed") from None
    soap_dir = Path(xmlschema.__file__).parent / "schemas" / "WSDL"
    files = {SOAP_ENV: soap_dir / "soap-envelope.xsd", SOAP_ENC: soap_dir / "soap-encoding.xsd",
             **{_BBF_URL.format(v): directory / f"cwmp-{v}.xsd" for v in ("1-2", "1-3")}}
    loaded = {}
    for version in SCHEMA_VERSIONS:
        path = directory / f"cwmp-{version}.xsd"
        if not path.is_file():
            raise SchemasUnavailable(f"{path.name} missing from {directory}")
        parser = etree.XMLParser(no_network=True)
        parser.resolvers.add(_LocalFiles(files))
        loaded[version] = etree.XMLSchema(etree.parse(str(path), parser))
    return loaded


def cwmp_namespace_of(document: etree._Element) -> str:
    for namespace in document.nsmap.values():
        if namespace in SCHEMAS_FOR_NAMESPACE:
            return namespace
    raise UnknownNamespace("the envelope declares no CWMP namespace a BBF schema defines "
                           f"(declared: {sorted(filter(None, document.nsmap.values()))})")


def validation_errors(schemas: dict[str, etree.XMLSchema], document: etree._Element) -> list[str]:
    """What each schema for the envelope's namespace finds wrong with it (empty: valid)."""
    problems = []
    for version in SCHEMAS_FOR_NAMESPACE[cwmp_namespace_of(document)]:
        schema = schemas[version]
        if not schema.validate(document):
            problems.append(f"cwmp-{version}.xsd: {schema.error_log}")
    return problems
