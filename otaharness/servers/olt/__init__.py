"""An OLT-style (OSRAM Lightelligence) firmware REST API with its MQTT side.

The OLT firmware flow was a draft (see docs/olt-api.md): the conventions it documents are
implemented exactly (``/v1``, ``{"data": …}``, paging, 404 for foreign resources, blob attach once
then 423); everything it leaves open (installation states, resource JSON, MQTT topics) is this
harness's own definite choice, anchored on Eclipse hawkBit DDI.

``store`` keeps state in SQLite, ``backend`` holds the rules, ``http_api`` maps HTTP onto the
backend, ``messaging`` maps MQTT onto it, ``openapi`` describes the HTTP side.
The MQTT topics and payloads both sides speak are the pure codec ``otaharness.protocols.olt``.
"""
