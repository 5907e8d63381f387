"""otaharness's step library: a module per flow plus common steps (time, values, faults, MQTT).

behave executes every file in this folder itself when it runs this repository's features, so step
modules never import each other (a second import would register their steps twice). Other
repositories load the library with ``otaharness.bdd.load_step_library()``.
"""
