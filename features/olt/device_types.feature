@embedded:olt
Feature: Device types declare schemas and slots
  As an IoT platform team we describe each kind of device by a device type: the JSON schemas of
  its configuration, attributes, events and actions, and the slots binaries go into. (Seed 001's
  "Extended OSR Light switch" example; the schema rules are docs/olt-api.md's, as OLT published
  none.)

  Scenario: The seed's OSRAM light switch type is accepted as it stands
    When I create the device type "seed switch" from the seed's OSRAM document
    Then the platform answers 201
    And the device type "seed switch" reads back as the seed's document

  Scenario: A device type whose schema is not a JSON schema is refused
    When I try to create a device type with
      """
      {
        "name": "Broken light switch",
        "manufacturer": "OSRAM",
        "model": "C3PO",
        "schema": {
          "attributes": {
            "temperature": {"type": "thermal", "property": "urn:oma:lwm2m:ext:5700"}
          }
        },
        "slots": {"firmware": {"name": "Test name"}}
      }
      """
    Then the platform answers 422 Unprocessable Entity
    And the answer points at "/schema/attributes/temperature"

  Scenario: A device type with an unknown slot kind is refused
    When I try to create a device type with
      """
      {
        "name": "Light switch with a modem",
        "schema": {},
        "slots": {"modem": {"name": "Modem firmware"}}
      }
      """
    Then the platform answers 422 Unprocessable Entity

  Scenario: A slot the device type does not declare takes no installation
    Given the device type "simple switch" declares the firmware slot
    And gateway "gw1" connects device "lamp1" of type "simple switch"
    And firmware "lamp bootloader" version "1.4" with a 4 KiB image
    When I try to install firmware "lamp bootloader" into the bootloader slot of device "lamp1"
    Then the platform answers 422 Unprocessable Entity
    And the answer says "declares no bootloader slot"
    And gateway "gw1" has received no installation instruction

  Scenario: A device report that violates the type's schema is rejected as a whole
    Given the device type "switch" declares the firmware slot
    And gateway "gw1" connects device "lamp1" of type "switch"
    When gateway "gw1" reports for device "lamp1" the attributes
      """
      {"temperature": 23.0, "humidity": 140}
      """
    Then soon the platform rejected the attributes report of device "lamp1" because "140 is greater than the maximum of 100"
    And the platform shows device "lamp1" with the attributes
      """
      {"temperature": 21.5}
      """
    And the platform shows device "lamp1" without the attributes field "humidity"
    # A report within the schema is taken.
    When gateway "gw1" reports for device "lamp1" the attributes
      """
      {"temperature": 23.0, "humidity": 40}
      """
    Then the platform shows device "lamp1" with the attributes
      """
      {"temperature": 23.0, "humidity": 40}
      """
