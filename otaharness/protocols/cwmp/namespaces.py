"""XML namespaces of CWMP messages (TR-069 Amendment 6 §A.2.1, Table 'Namespaces')."""

from __future__ import annotations

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_ENC = "http://schemas.xmlsoap.org/soap/encoding/"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"

CWMP_1_0 = "urn:dslforum-org:cwmp-1-0"
CWMP_1_1 = "urn:dslforum-org:cwmp-1-1"
CWMP_1_2 = "urn:dslforum-org:cwmp-1-2"  # also used by CWMP 1.3 and 1.4 messages
# No BBF schema defines cwmp-1-3, but GenieACS accepts it (as 1.4); so do we, and we answer in it.
CWMP_1_3 = "urn:dslforum-org:cwmp-1-3"

CWMP_NAMESPACES: tuple[str, ...] = (CWMP_1_0, CWMP_1_1, CWMP_1_2, CWMP_1_3)

# The schema that defines each namespace's RPCs: the stray cwmp-1-3 speaks the 1-2 schema.
SCHEMA_LEVEL: dict[str, int] = {CWMP_1_0: 0, CWMP_1_1: 1, CWMP_1_2: 2, CWMP_1_3: 2}


def nsmap(cwmp_namespace: str) -> dict[str, str]:
    """Prefixes used when we build (GenieACS's; peers must not care about prefixes)."""
    return {
        "soap-env": SOAP_ENV,
        "soap-enc": SOAP_ENC,
        "xsd": XSD,
        "xsi": XSI,
        "cwmp": cwmp_namespace,
    }
