from pathlib import Path

import pytest

from discovery.errors import ConfigError
from discovery.settings import consul_settings, format_duration, parse_duration, parse_pairs, parse_wait


@pytest.mark.parametrize(
    "text, seconds", [("250ms", 0.25), ("5s", 5), ("1m30s", 90), ("2h", 7200), ("3", 3), ("1.5s", 1.5)]
)
def test_durations_parse_like_consul(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5x", "s", "1s5", "-1s", "1 s", "ms5"])
def test_bad_durations_are_refused_with_the_value_named(text):
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration(text)


def test_format_duration_is_what_consul_accepts():
    assert format_duration(300) == "300s"
    assert format_duration(0.25) == "250ms"


def test_wait_min_max_and_default_max():
    assert parse_wait("100ms:2s") == (0.1, 2.0)
    assert parse_wait("1s") == (1.0, 4.0)
    with pytest.raises(ConfigError, match="MAX must not be below MIN"):
        parse_wait("2s:1s")


def test_pairs_need_key_equals_value():
    assert parse_pairs(["a=1", "b_c=x=y"], "--set") == {"a": "1", "b_c": "x=y"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_pairs(["novalue"], "--set")
    with pytest.raises(ConfigError):
        parse_pairs(["1bad=x"], "--set")


def test_flag_beats_environment_beats_default():
    env = {"CONSUL_HTTP_ADDR": "10.1.2.3:9500", "CONSUL_HTTP_TOKEN": "t-env"}
    assert consul_settings(env={}).url == "http://127.0.0.1:8500"
    assert consul_settings(env=env).url == "http://10.1.2.3:9500"
    assert consul_settings(env=env).current_token() == "t-env"
    flagged = consul_settings("https://consul.example:8501", token="t-flag", env=env)
    assert flagged.url == "https://consul.example:8501"
    assert flagged.current_token() == "t-flag"


def test_ssl_variable_switches_scheme_for_bare_host_port():
    assert consul_settings(env={"CONSUL_HTTP_ADDR": "h:8501", "CONSUL_HTTP_SSL": "true"}).scheme == "https"


def test_token_file_is_reread_each_time(tmp_path: Path):
    token = tmp_path / "token"
    token.write_text("first\n")
    settings = consul_settings(env={"CONSUL_HTTP_TOKEN_FILE": str(token)})
    assert settings.current_token() == "first"
    token.write_text("second")
    assert settings.current_token() == "second"


@pytest.mark.parametrize("addr", ["ftp://h:1", "http://:8500", "http://h:99999", "http://h:8500/v1"])
def test_bad_consul_addresses_are_refused(addr):
    with pytest.raises(ConfigError, match="invalid Consul address"):
        consul_settings(addr, env={})
