"""The console's failure block reads behave's nested messages: a step that *raised* inside a
declarative line (behave's `ERROR SUB-STEP`) is explained by its exception, not by the name of
the step that raised it (`reason: ERROR SUB-STEP: And the operator uploads these files` hid
`FileNotFoundError: no file 'routeros-x86-9.9.9.npk'` in the traceback above it), and a quoted
file name in a reason is not taken for the device."""

from __future__ import annotations

from types import SimpleNamespace

from otaharness.bdd.environment import (
    _deepest_reason,
    _device_named,
    _innermost_substep,
)

# behave 1.3's message for a declarative step whose nested detailed step raised (as printed by
# `otaharness run`, frames shortened)
ERRORED = """\
ASSERT FAILED: ERROR SUB-STEP: And the operator uploads these files
Substep info: Traceback (most recent call last):
  File "/site-packages/behave/model.py", line 1991, in run
    match.run(runner.context)
  File "/work/main/steps/tr069.py", line 416, in _content
    raise FileNotFoundError(f"no file {file!r} (neither written here nor in fixtures/tr069)")
FileNotFoundError: no file 'routeros-x86-9.9.9.npk' (neither written here nor in fixtures/tr069)

Traceback (of failed substep):
  File "/site-packages/behave/model.py", line 1991, in run
    match.run(runner.context)
  File "/work/main/steps/tr069.py", line 416, in _content
    raise FileNotFoundError(f"no file {file!r} (neither written here nor in fixtures/tr069)")
"""

# a check that failed two levels down, as before
ASSERTED = """\
ASSERT FAILED: FAILED SUB-STEP: Then the `t1` tracker still runs firmware version `1.0.2`
Substep info: ASSERT FAILED: the `t1` tracker runs 1.0.1
"""


def test_a_nested_step_that_raised_is_explained_by_its_exception():
    assert _deepest_reason(ERRORED) == ("FileNotFoundError: no file 'routeros-x86-9.9.9.npk' "
                                        "(neither written here nor in fixtures/tr069)")
    assert _innermost_substep(ERRORED) == "And the operator uploads these files"


def test_a_nested_check_that_failed_is_still_explained_by_its_assertion():
    assert _deepest_reason(ASSERTED) == "the `t1` tracker runs 1.0.1"
    assert _innermost_substep(ASSERTED) == (
        "Then the `t1` tracker still runs firmware version `1.0.2`")


def test_the_device_is_the_one_named_not_a_quoted_file_in_the_reason():
    runtime = SimpleNamespace(devices={"cpe1": object()})
    file_in_reason = 'say `the operator deletes the file "tr069-client-6.48.4.npk"`'
    assert _device_named(runtime, "Given firmware 9.9.9 is missing None", file_in_reason) is None
    assert _device_named(runtime, "Then soon cpe1 runs 6.48.4", file_in_reason) == "cpe1"
    assert _device_named(runtime, 'When the operator forces the upgrade of "cpe7" now',
                         file_in_reason) == "cpe7"
