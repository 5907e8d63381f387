"""Docker targets: their settings, container faults' phrases, and (with an engine) containers that
are labelled, made ready or refused with their log, faulted, sliced and removed even on
interrupt. The engine tests are marked slow (CI's slow step, after scripts/setup)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import docker.errors
import pytest

from otaharness.runtime import docker_targets
from otaharness.runtime.docker_targets import (
    BASE_IMAGE,
    Container,
    DockerSpec,
    DockerTargetError,
    fill_ports,
)
from otaharness.runtime.faults import (
    Kill,
    LinkFaultError,
    Pause,
    Restart,
    Start,
    parse_container_fault,
)
from otaharness.runtime.targets import ConfigError, load_config

LOOPBACK = "mqtt://127.0.0.1:{port:mqtt}"


def docker_target(**keys) -> dict[str, str]:
    return {"target.broker": "docker", **{f"target.broker.{k}": v for k, v in keys.items()}}


# -- settings ---------------------------------------------------------------------------------


def test_a_docker_target_section_from_toml_reads_like_its_d_names(tmp_path):
    section = tmp_path / "otaharness.toml"
    section.write_text(textwrap.dedent("""
        [targets.broker]
        target = "docker"
        image = "my/broker:1"
        env.LOG_LEVEL = "debug"
        endpoint.mqtt = "mqtt://127.0.0.1:{port:mqtt}"
        mount."/etc/broker.conf" = "broker.conf"
        ready = "tcp:mqtt"
    """))
    from_toml = load_config({}, path=section).targets["broker"]
    from_d = load_config(docker_target(**{
        "image": "my/broker:1", "env.LOG_LEVEL": "debug", "endpoint.mqtt": LOOPBACK,
        "mount./etc/broker.conf": "broker.conf", "ready": "tcp:mqtt"})).targets["broker"]
    assert from_toml == from_d
    spec = DockerSpec.from_settings("broker", from_toml.endpoints)
    assert spec.environment == {"LOG_LEVEL": "debug"}
    assert spec.mounts == {"/etc/broker.conf": "broker.conf"}
    assert spec.endpoints == {"mqtt": LOOPBACK}
    # a back end outside the harness: the scenarios run on real time
    assert load_config({}, path=section).any_external


@pytest.mark.parametrize("keys, message", [
    ({"endpoint.mqtt": LOOPBACK}, "give an image or a build context"),
    ({"image": "a", "build": "b", "endpoint.mqtt": LOOPBACK}, "one of them"),
    ({"image": "a"}, "names no endpoint"),
    ({"image": "a", "endpoint.mqtt": "mqtt://10.0.0.7:1883"}, "must be on 127.0.0.0/8"),
    ({"image": "a", "endpoint.mqtt": LOOPBACK, "ready": "ping:mqtt"}, "expected tcp:<endpoint>"),
    ({"image": "a", "endpoint.mqtt": LOOPBACK, "ready": "tcp:mqtts"}, "names no endpoint of mqtt"),
    ({"image": "a", "endpoint.mqtt": LOOPBACK, "lifetime": "feture"}, "did you mean `feature`"),
    ({"image": "a", "endpoint.mqtt": LOOPBACK, "ready_timeout": "0"}, "positive"),
    ({"image": "a", "endpoint.mqtt": LOOPBACK, "mount./srv": "{artifacts}"},
     'lifetime = "scenario"'),
    ({"image": "a", "endpoint.mqtt": LOOPBACK, "endpoints": "stdout"}, "log-json"),
])
def test_a_docker_target_that_cannot_work_is_refused_before_the_run(keys, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("*", r"\*")):
        load_config(docker_target(**keys))


def test_a_container_of_its_own_is_named_unlike_any_flow():
    own = {"target.nginx-files": "docker", "target.nginx-files.image": "x",
           "target.nginx-files.endpoint.files": "https://127.0.0.1:{port:files}"}
    assert load_config(own).targets["nginx-files"].kind == "docker"
    misspelt = {key.replace("nginx-files", "tr069_"): value for key, value in own.items()}
    with pytest.raises(ConfigError, match="did you mean `tr069`"):
        load_config(misspelt)


def test_a_flows_own_settings_are_still_checked_beside_the_docker_keys():
    keys = {"target.tr069": "docker", "target.tr069.image": "acs:1",
            "target.tr069.endpoint.acs": "https://127.0.0.1:{port:acs}"}
    assert load_config({**keys, "target.tr069.tls": "false"}).targets["tr069"].kind == "docker"
    with pytest.raises(ConfigError, match="unknown setting of tr069"):
        load_config({**keys, "target.tr069.tsl": "false"})


def test_virtual_time_keeps_the_scenario_on_the_virtual_clock():
    keys = docker_target(image="a", **{"endpoint.mqtt": LOOPBACK})
    assert load_config(keys).any_external
    assert not load_config({**keys, "target.broker.virtual_time": "true"}).any_external


def test_the_same_port_name_gets_the_same_free_port_and_another_name_another():
    ports: dict[str, int] = {}
    first = fill_ports("mqtt://127.0.0.1:{port:mqtt}", ports)
    assert fill_ports("-p {port:mqtt} -q {port:ws}", ports) == \
        f"-p {ports['mqtt']} -q {ports['ws']}"
    assert first.endswith(f":{ports['mqtt']}") and ports["mqtt"] != ports["ws"]


# -- container fault phrases --------------------------------------------------------------------


@pytest.mark.parametrize("phrase, fault", [
    ("paused for 30 seconds", Pause(30.0)), ("paused for 2 minutes", Pause(120.0)),
    ("restarted", Restart()), ("killed", Kill()), ("started again", Start()),
    ("  Killed ", Kill()),
])
def test_container_fault_phrases(phrase, fault):
    assert parse_container_fault(phrase) == fault


@pytest.mark.parametrize("phrase, message", [
    ("paused for 0 seconds", "above 0"), ("paused for ever", "in container fault"),
    ("rebooted", "'paused for 30 seconds', 'restarted', 'killed' or 'started'"),
])
def test_a_phrase_that_names_no_container_fault_says_which_do(phrase, message):
    with pytest.raises(LinkFaultError, match=message):
        parse_container_fault(phrase)


# -- with an engine ------------------------------------------------------------------------------

def with_engine(test):
    """An engine test: slow (CI's slow step); skipped without an engine, except under CI."""
    problem = docker_targets.engine_problem()
    skip = pytest.mark.skipif(problem is not None and os.environ.get("CI") != "true",
                              reason=f"{problem}")
    return pytest.mark.slow(skip(test))


def shell_target(script: str, **keys) -> DockerSpec:
    """A container of the base image running a shell script (minbase has sh, no servers)."""
    try:
        docker_targets.engine().images.get(BASE_IMAGE)
    except Exception:  # noqa: BLE001
        pytest.skip(f"no base image {BASE_IMAGE}: run scripts/setup")
    return DockerSpec("test", image=BASE_IMAGE, command=f"sh -c '{script}'",
                      endpoints={"web": "http://127.0.0.1:{port:web}"}, **keys)


@pytest.fixture
def started():
    made: list[Container] = []

    def start(spec: DockerSpec) -> Container:
        container = Container(spec)
        made.append(container)
        container.start_blocking()
        return container

    yield start
    for container in made:
        container.remove_blocking()


@with_engine
def test_every_container_is_labelled_and_removed(started):
    container = started(shell_target("echo up; exec sleep 600", ready="log:up"))
    client = docker_targets.engine()
    labelled = client.containers.list(filters={"label": "otaharness"})
    assert container.container.id in [c.id for c in labelled]
    assert container.container.labels["otaharness.target"] == "test"
    container.remove_blocking()
    assert container.container.id not in [c.id for c in client.containers.list(
        all=True, filters={"label": "otaharness"})]


@with_engine
def test_a_container_that_never_gets_ready_is_refused_with_its_log_tail(started):
    spec = shell_target("echo loading the firmware store; exec sleep 600", ready="log:listening",
                        ready_timeout=1.5)
    with pytest.raises(DockerTargetError) as refused:
        started(spec)
    assert "not ready within 1.5 s" in str(refused.value)
    assert "loading the firmware store" in str(refused.value)


@with_engine
def test_a_container_that_exits_before_it_is_ready_says_how(started):
    with pytest.raises(DockerTargetError) as refused:
        started(shell_target("echo no licence key >&2; exit 3", ready="log:listening"))
    assert "exit code 3" in str(refused.value) and "no licence key" in str(refused.value)


@with_engine
def test_faults_pause_kill_and_start_again_and_recovery(started):
    container = started(shell_target("echo up; exec sleep 600", ready="log:up"))
    container.fault_blocking(Pause(30))
    assert container.status() == "paused"
    container.recover_blocking()
    assert container.status() == "running"
    container.fault_blocking(Kill())
    assert container.status() == "exited"
    container.fault_blocking(Start())
    assert container.status() == "running"


@with_engine
def test_a_scenario_gets_only_its_part_of_the_log(started):
    container = started(shell_target(
        "echo before; while sleep 0.2; do [ -e /tmp/go ] && echo after && exit 0; done",
        ready="log:before"))
    since = time.time()
    container.container.exec_run("touch /tmp/go")
    deadline = time.monotonic() + 30
    while b"after" not in container.logs_since(since) and time.monotonic() < deadline:
        time.sleep(0.1)
    part = container.logs_since(since)
    assert b"after" in part and b"before" not in part


@with_engine
@pytest.mark.parametrize("interrupt", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_an_interrupted_run_leaves_no_container(tmp_path, interrupt):
    shell_target("true")  # skips without the base image
    program = tmp_path / "interrupted.py"
    program.write_text(textwrap.dedent(f"""
        import time
        from otaharness.runtime.docker_targets import Container, DockerSpec
        spec = DockerSpec("interrupted", image={BASE_IMAGE!r},
                          command="sh -c 'echo up; exec sleep 600'",
                          endpoints={{"web": "http://127.0.0.1:{{port:web}}"}}, ready="log:up")
        Container(spec).start_blocking()
        print("started", flush=True)
        time.sleep(600)
    """))
    run = subprocess.Popen([sys.executable, str(program)], stdout=subprocess.PIPE, text=True,
                           cwd=Path(__file__).resolve().parents[2])
    try:
        assert run.stdout.readline().strip() == "started"
        client = docker_targets.engine()
        mine = {"label": f"otaharness.pid={run.pid}"}
        assert len(client.containers.list(all=True, filters=mine)) == 1
        run.send_signal(interrupt)
        run.wait(timeout=60)
        assert client.containers.list(all=True, filters=mine) == []
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


@with_engine
def test_containers_of_a_killed_run_are_removed_by_the_next(tmp_path):
    shell_target("true")
    client = docker_targets.engine()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    left = client.containers.run(BASE_IMAGE, "sleep 600", detach=True, network_mode="host",
                                 labels={"otaharness": "", "otaharness.pid": dead})
    try:
        docker_targets._remove_orphans(client)
        assert left.id not in [c.id for c in client.containers.list(all=True)]
    finally:
        with contextlib.suppress(docker.errors.NotFound):  # removed, as it should be
            left.remove(force=True)


@with_engine
def test_a_flow_with_an_external_mode_runs_it_against_its_container():
    shell_target("true")
    from otaharness.runtime.runtime import Runtime

    config = load_config({
        "target.aws-iot": "docker", "target.aws-iot.image": BASE_IMAGE,
        "target.aws-iot.command": "sh -c 'echo up; exec sleep 600'",
        "target.aws-iot.ready": "log:up", "target.aws-iot.lifetime": "scenario",
        "target.aws-iot.endpoint.mqtt": "mqtt://127.0.0.1:{port:mqtt}",
        "target.aws-iot.endpoint.aws": "http://127.0.0.1:{port:aws}"})
    runtime = Runtime(config, name="docker -- external mode")
    try:
        service = runtime.run(runtime.service("aws-iot"))
        assert service.embedded is False  # the flow's own external service answers
        assert runtime.target("aws-iot").kind == "external"
        assert runtime.target("aws-iot").endpoints["mqtt"] == service.endpoints()["mqtt"]
        assert "{port:" not in service.endpoints()["mqtt"]
        assert runtime.run(service.state()) == "running"
    finally:
        assert runtime.close() == []
    assert docker_targets.engine().containers.list(
        all=True, filters={"label": f"otaharness.pid={os.getpid()}"}) == []


def test_without_an_engine_docker_scenarios_are_skipped_with_the_reason_or_fail_under_ci(
        monkeypatch):
    monkeypatch.setattr(docker_targets, "engine_problem",
                        lambda: "no container engine answers (ConnectionError)")
    config = load_config({}, environ={})
    kept, reason = docker_targets.scenario_config(config, ["docker", "docker-target:mosquitto"])
    assert kept is config and "no container engine answers" in reason
    assert docker_targets.scenario_config(config, ["tr069"]) == (config, None)  # not docker
    with pytest.raises(docker_targets.EngineUnavailable, match="under CI=true"):
        docker_targets.scenario_config(load_config({}, environ={"CI": "true"}), ["docker"])


def test_a_docker_target_tag_adds_the_fixtures_section(monkeypatch):
    monkeypatch.setattr(docker_targets, "engine_problem", lambda: None)
    monkeypatch.setattr(docker_targets, "build_image", lambda spec: "built")
    config, reason = docker_targets.scenario_config(load_config({}, environ={}),
                                                    ["docker", "docker-target:nginx-files"])
    assert reason is None
    assert config.targets["nginx-files"].endpoints["endpoint.files"] == \
        "https://127.0.0.1:{port:files}"
    assert not config.any_external  # nginx declares virtual_time


@with_engine
def test_a_command_the_image_lacks_is_refused_and_leaves_no_container(started):
    spec = shell_target("true")
    spec = DockerSpec("test", image=spec.image, command="/no/such/server --serve",
                      endpoints=spec.endpoints)
    with pytest.raises(DockerTargetError, match="cannot start"):
        started(spec)
    assert docker_targets.engine().containers.list(
        all=True, filters={"label": f"otaharness.pid={os.getpid()}"}) == []


@with_engine
def test_a_restarted_container_is_ready_by_its_new_log_not_its_old_one(started):
    container = started(shell_target(
        "[ -e /tmp/second ] && { sleep 2; echo up again; exec sleep 600; }; "
        "touch /tmp/second; echo up; exec sleep 600", ready="log:up", ready_timeout=30))
    container.fault_blocking(Restart())
    assert b"up again" in container.container.logs()  # ready only once it said so again


def test_tokens_a_container_printed_never_reach_its_log_slice():
    container = Container(DockerSpec("serve", image="x", endpoints={"a": "http://127.0.0.1:1"}))
    container.tokens = {"admin": "s3cr3t-t0ken"}
    assert container._redacted(b'{"tokens": {"admin": "s3cr3t-t0ken"}}') == \
        b'{"tokens": {"admin": "<redacted>"}}'


@with_engine
def test_a_build_that_fails_says_why_with_the_build_log(tmp_path):
    shell_target("true")
    (tmp_path / "Dockerfile").write_text(
        "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nRUN echo the vendor SDK is missing && exit 7\n")
    spec = DockerSpec("broken", build=str(tmp_path), endpoints={"a": "http://127.0.0.1:1"})
    with pytest.raises(DockerTargetError) as refused:
        docker_targets.build_image(spec)
    assert "building" in str(refused.value) and "the vendor SDK is missing" in str(refused.value)


@with_engine
def test_a_new_build_of_a_context_replaces_the_stale_image(tmp_path):
    shell_target("true")
    context = tmp_path / "otaharness-test-stale"
    context.mkdir()
    client = docker_targets.engine()
    tags = []
    try:
        for version in ("1", "2"):
            (context / "Dockerfile").write_text(
                f"ARG BASE_IMAGE\nFROM ${{BASE_IMAGE}}\nLABEL version={version}\n")
            docker_targets._built.clear()
            tags.append(docker_targets.build_image(
                DockerSpec("stale", build=str(context), endpoints={"a": "http://127.0.0.1:1"})))
        left = [t for image in client.images.list(name=tags[0].partition(":")[0])
                for t in image.tags]
        assert left == [tags[1]]
    finally:
        for tag in tags:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag)
