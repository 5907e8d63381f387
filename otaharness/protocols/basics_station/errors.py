"""The one exception type of the Basics Station codecs."""


class BasicsStationCodecError(ValueError):
    """Bytes or JSON that a LoRa Basics Station (2.0.6) or its servers would not accept.

    The message names the field or segment at fault and what was expected.
    """
