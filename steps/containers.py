"""Container steps: faults and states of a back end that runs in a docker target
(otaharness/runtime/docker_targets.py, docs/docker-targets.md)."""

from behave import given, then, when

from otaharness.bdd.support import ota
from otaharness.runtime.faults import parse_container_fault

CONTAINER_STATES = ("running", "paused", "exited")


def _container_service(context, target):
    runtime = ota(context)
    name = target.strip()
    if runtime.target(name).kind != "docker":
        raise LookupError(f"{name} does not run in a docker target here (its target is "
                          f"{runtime.target(name).kind}): container steps need one")
    return runtime.run(runtime.service(name))


@when('the {target} container is {fault}')
def container_fault(context, target, fault):
    """Fault the container of a docker target: `paused for 30 seconds` (it hangs, then carries
    on), `restarted` (kept state is what its volumes keep), `killed`, `started again`. A restart
    or start returns once the back end is ready again."""
    service = _container_service(context, target)
    runtime = ota(context)
    runtime.run(service.fault(parse_container_fault(fault)))


@then('the {target} container is {state:w}')
def container_state(context, target, state):
    """The engine reports the container of a docker target as `running`, `paused` or `exited`."""
    assert state in CONTAINER_STATES, f"a container state is one of {', '.join(CONTAINER_STATES)}"
    service = _container_service(context, target)
    actual = ota(context).run(service.state())
    assert actual == state, f"the {target} container is {actual}, expected {state}"


@then('the log of the {target} container has a line with "{text}"')
def container_log_has(context, target, text):
    """The container's log since the scenario began (what its server wrote: an access log
    line, an error) has a line containing the text."""
    service = _container_service(context, target)
    lines = ota(context).run(service.log_lines())
    assert any(text in line for line in lines), (
        f"no line of the {target} container's log has {text!r}; its last lines:\n"
        + "\n".join(lines[-20:]))


# -- a flow's endpoint served from a container -------------------------------------------------


@given("the ACS's Download URLs point at the {endpoint} endpoint of the {target} container")
def acs_files_in_container(context, endpoint, target):
    """The TR-069 ACS (embedded) names files at a file server in a container: its Download
    URLs and the upgrade XMLs written afterwards carry that server's URL (setting `files_url`)."""
    runtime = ota(context)
    files = _container_service(context, target).endpoints()[endpoint]
    acs = runtime.run(runtime.service("tr069"))
    acs.acs.config.files_url = files
