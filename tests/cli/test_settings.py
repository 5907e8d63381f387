"""otaharness.toml and -D: every section, key and value is checked, and a misspelling names the
closest valid one."""

import pytest

from otaharness.runtime.targets import ConfigError, boolean, closest, load_config


def _load(tmp_path, toml="", **userdata):
    path = tmp_path / "otaharness.toml"
    path.write_text(toml)
    return load_config(userdata, path=path, environ={})


@pytest.mark.parametrize("toml, userdata, message", [
    ('[harness]\ncaptur = "x"', {}, "unknown key 'captur' in [harness] (did you mean `capture`?)"),
    ('[harnes]\nseed = 1', {}, "unknown section [harnes] (did you mean `harness`?)"),
    ("", {"brokr": "amqtt"}, "-D brokr: unknown setting (did you mean `broker`?)"),
    ("", {"broker": "mosquito"}, "(did you mean `mosquitto`?)"),
    ("", {"seed": "seven"}, "seed: must be an integer"),
    ("", {"real_time_limit": "-1"}, "real_time_limit: expected a positive number"),
    ("", {"target.aws-iot": "externl"}, "not 'externl' (did you mean `external`?)"),
    ("", {"target.aws-iot.plain_mqt": "true"},
     "-D target.aws-iot.plain_mqt: unknown setting of aws-iot (did you mean `plain_mqtt`?)"),
    ('[targets.aws-iot]\nplain_mqtt = "ture"', {}, "plain_mqtt: expected true or false"),
    ('[targets.aws-iot]\ntarget = "external"\nmqtt = "http://h:1"', {},
     "mqtt: expected a mqtt:// URL"),
    ("", {"target.olt": "external"}, "olt has no external target"),
    ("", {"target.olt.plain_htp": "true"}, "(did you mean `plain_http`?)"),
    ("", {"target.lorawan.plain_http": "maybe"}, "expected true or false, not 'maybe'"),
    ("", {"traget.olt": "external"}, "did you mean `target.<flow>`?"),
    ("", {"env": "staging"}, "your own userdata: a dotted name such as myteam.env"),
])
def test_a_misspelled_setting_is_an_error_naming_the_closest(tmp_path, toml, userdata, message):
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, toml, **userdata)
    assert message in str(raised.value)


def test_a_misspelled_target_no_longer_switches_to_real_time_silently(tmp_path):
    """[targets.aws_iot] made the run external (real time) while aws-iot stayed embedded."""
    with pytest.raises(ConfigError, match=r"\[targets.aws_iot\]: no flow 'aws_iot' "
                       r"\(did you mean `aws-iot`\?\)"):
        _load(tmp_path, '[targets.aws_iot]\ntarget = "external"\nmqtt = "mqtt://h:1883"')
    config = _load(tmp_path, '[targets.aws-iot]\ntarget = "external"\nmqtt = "mqtt://h:1883"')
    assert config.any_external and not config.target("aws-iot").embedded


def test_valid_settings_load(tmp_path):
    config = _load(tmp_path, '[harness]\ncapture = "caps"\nseed = 7\n[targets.aws-iot]\n'
                   'plain_mqtt = true\n', **{"broker": "mqtt://127.0.0.1:1883", "seed": "8",
                                             "myteam.env": "staging"})
    assert config.seed == 8 and str(config.capture_dir) == "caps"
    assert config.broker == "mqtt://127.0.0.1:1883"
    assert config.target("aws-iot").endpoints == {"plain_mqtt": "true"}  # a TOML bool as text
    assert _load(tmp_path, "", seed="").seed is None


def test_a_flow_that_declares_nothing_passes_its_keys(tmp_path, monkeypatch):
    """Keys of a flow whose service module has no SETTINGS are not judged (they are its own)."""
    import otaharness.servers.fuota.service as fuota_service

    monkeypatch.delattr(fuota_service, "SETTINGS", raising=False)
    assert _load(tmp_path, "", **{"target.fuota.anything": "1"}).target("fuota").endpoints == {
        "anything": "1"}
    monkeypatch.setattr(fuota_service, "SETTINGS", {"window": ("short", "long")}, raising=False)
    with pytest.raises(ConfigError, match="(did you mean `window`?)"):
        _load(tmp_path, "", **{"target.fuota.windw": "short"})
    with pytest.raises(ConfigError, match="must be one of short, long, not 'shrt' "
                       r"\(did you mean `short`\?\)"):
        _load(tmp_path, "", **{"target.fuota.window": "shrt"})


def test_helpers():
    assert boolean("Yes") is True and boolean("off") is False
    with pytest.raises(ValueError):
        boolean("maybe")
    assert closest("aws_iot", ["aws-iot", "olt"]) == " (did you mean `aws-iot`?)"
    assert closest("zzz", ["aws-iot"]) == ""
