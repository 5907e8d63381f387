"""The step catalogue: word search, examples from features, "did you mean" for undefined steps."""

import textwrap

from behave.model import Step
from behave.step_registry import StepRegistry

from otaharness.bdd.catalogue import (
    StepEntry, add_examples, closest_steps, did_you_mean, registered_steps, search, stem)


def _registry():
    registry = StepRegistry()

    def upload(context, file):
        """The operator uploads a firmware file to the file server."""

    def passes(context, duration):
        """Let scenario time pass."""

    def reboots(context, name):
        """The device restarts in an orderly way."""

    def size(context, file, size):
        """The stored file's size in bytes."""

    registry.add_step_definition("when", 'the operator uploads "{file}"', upload)
    registry.add_step_definition("when", "{duration} pass", passes)
    registry.add_step_definition("when", 'device "{name}" reboots', reboots)
    registry.add_step_definition("then", 'the file "{file}" is {size:d} bytes long', size)
    return registry


def test_light_stemming():
    assert stem("uploads") == stem("uploaded") == stem("uploading") == "upload"
    assert stem("is") == "is" and stem("bytes") == stem("byte")
    assert stem("resumed") == stem("resume") and stem("passes") == stem("pass") == "pass"


def test_search_needs_every_word_and_ranks_the_step_text_first():
    entries = registered_steps(_registry())
    assert [e.pattern for e in search(entries, "uploaded file")] == ['the operator uploads "{file}"']
    assert [e.pattern for e in search(entries, "file size")] == [
        'the file "{file}" is {size:d} bytes long']  # "size" only in its doc: still found
    assert search(entries, "upload nonsense") == []
    assert [e.pattern for e in search(entries, "orderly")] == ['device "{name}" reboots']
    # a word in the step text counts more than one in the doc
    assert [e.pattern for e in search(entries, "byte")] == [
        'the file "{file}" is {size:d} bytes long']
    assert [e.pattern for e in search(entries, "file")][0] == 'the file "{file}" is {size:d} bytes long'


def test_examples_come_from_features_that_use_the_step(tmp_path):
    (tmp_path / "a.feature").write_text(textwrap.dedent("""\
        Feature: f
          Scenario: s
            When the operator uploads "fw.bin"
            And 30 minutes pass
            Then soon the file "fw.bin" is 42 bytes long
        """))
    registry = _registry()
    entries = registered_steps(registry)
    add_examples(entries, [tmp_path], registry)
    examples = {e.pattern: (e.example, e.example_at.rpartition(":")[2]) for e in entries}
    assert examples['the operator uploads "{file}"'] == ('When the operator uploads "fw.bin"', "3")
    assert examples["{duration} pass"] == ("When 30 minutes pass", "4")  # "And" said as When
    # the step a `soon …` line retries is used there too
    assert examples['the file "{file}" is {size:d} bytes long'] == (
        'Then the file "fw.bin" is 42 bytes long', "5")
    assert examples['device "{name}" reboots'] == ("", "")


def test_an_undefined_step_gets_the_closest_steps_first():
    registry = _registry()
    entries = registered_steps(registry)
    assert closest_steps("then", 'devise "t1" reboots', entries)[0].pattern == 'device "{name}" reboots'
    assert closest_steps("when", 'the operator uploaded "x.bin"', entries)[0].pattern == \
        'the operator uploads "{file}"'
    assert len(closest_steps("when", "anything", entries)) == 3
    text = did_you_mean([Step("f.feature", 7, "Then ", "then", 'devise "t1" reboots'),
                         Step("f.feature", 9, "Then ", "then", 'devise "t1" reboots')], registry)
    assert text.count("Undefined step:") == 1  # each line once
    assert 'Undefined step: Then devise "t1" reboots  (f.feature:7)' in text
    assert text.index('When device "{name}" reboots') < text.index("did you mean") + 60


def test_entries_serialise_for_json():
    entry = StepEntry("When", "{duration} pass", "Let time pass.", "common", "steps/common.py:27")
    assert entry.as_dict()["pattern"] == "{duration} pass" and entry.text == "When {duration} pass"
