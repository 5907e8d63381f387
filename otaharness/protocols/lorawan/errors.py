"""Exceptions raised by the LoRaWAN 1.0.x codecs.

Malformed or inconsistent input raises one of these; a wrong MIC never raises
(the ``mic_is_valid`` checks return False), because a bad MIC is an expected
outcome on a radio link, not a programming error.
"""


class LoRaWANError(ValueError):
    """Malformed or inconsistent LoRaWAN data."""


class FrameTooShortError(LoRaWANError):
    """A PHYPayload, MAC command or field ends before its layout says it should."""


class UnknownMTypeError(LoRaWANError):
    """MHDR carries an MType (or Major) this codec does not handle."""


class UnknownMacCommandError(LoRaWANError):
    """A CID that is not a LoRaWAN 1.0.x MAC command for the given direction."""
