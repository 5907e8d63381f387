@embedded:cups
Feature: Basics Station identity on CUPS and the LNS
  CUPS runs over HTTPS and the LNS over WSS with the scenario's PKI. `otaharness cups
  station-credentials` writes a station's files (`cups.uri`, `cups.trust`, `cups.crt` + `cups.key`
  or a token in `cups.key`, and the same `tc.*` set); the real LoRa Basics Station and the emulator
  read them the same way. A station reaches only its own update and router path; a certificate the
  servers cannot verify ends the TLS handshake before any HTTP.

  Scenario: A station with a token upgrades through CUPS and reconnects to the LNS
    Given the firmware team prepares the signature key "release"
    And an update file "v1.bin" that installs package "v1"
    And the firmware team signs "v1.bin" with the key "release"
    And station "gw1" is provisioned with package "v0", the signature key "release" and a token
    When station "gw1" is switched on
    Then soon station "gw1" is connected to the LNS
    When the operator uploads "v1.bin" as package "v1" for station "gw1"
    And device "gw1" reboots
    Then soon the registry shows package "v1" reported by station "gw1" to the LNS
    And station "gw1" reached CUPS and the LNS over TLS with its token

  Scenario: A station whose client certificate has expired reaches neither CUPS nor the LNS
    Given station "gw1" is provisioned with package "v0", no signature key and an expired client certificate
    When station "gw1" is switched on
    And 10 minutes pass
    Then station "gw1" could not reach CUPS: certificate expired
    And station "gw1" is not connected to the LNS
