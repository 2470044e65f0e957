"""``disco watch``'s settings: flags > config file > defaults, and the TOML file that holds them.

Every flag of ``disco watch`` has a key of the same name in the file (``--master-socket`` is
``master-socket``; ``master_socket`` is accepted too)::

    service = ["web", "api"]
    discover = true            # also every service with a route tag (urlprefix-...)
    output = "/etc/haproxy/haproxy.cfg"
    master-socket = "/run/haproxy/master.sock"
    listen = "127.0.0.1:9120"
    [set]
    frontend_port = 80

A flag given on the command line wins over the file; ``--set`` values are merged key by
key (the flag's value wins).  An unknown key, or a value of the wrong type, is a
ConfigError naming the key and the file.  :func:`watch_config` turns the resolved options
into a :class:`~discovery.pipeline.watcher.WatchConfig`; ``watch`` and ``plan`` share it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError

_STR, _NUM, _BOOL, _LIST, _TABLE = "a string", "a number", "true or false", "a list of strings", "a table"


@dataclass(frozen=True)
class Key:
    kind: str
    default: Any = None


WATCH_KEYS: dict[str, Key] = {
    "service": Key(_LIST, ()),
    "output": Key(_STR),
    "template": Key(_STR),
    "tag": Key(_STR),
    "set": Key(_TABLE, {}),
    "master-socket": Key(_STR),
    "reload-cmd": Key(_STR),
    "runtime-socket": Key(_STR),
    "drain-grace": Key(_STR, "10s"),
    "check-cmd": Key(_STR, "haproxy -c -f {path}"),
    "wait": Key(_STR, "10ms:1s"),
    "gate-share": Key(_NUM, 1.0),
    "gate-grace": Key(_STR, "30s"),
    "when-empty": Key(_STR, "keep"),
    "watch-mode": Key(_STR, "auto"),
    "discover": Key(_BOOL, False),
    "overrides-prefix": Key(_STR, "disco/overrides/"),
    "failover-dc": Key(_LIST, ()),
    "stale": Key(_BOOL, False),
    "max-stale": Key(_STR, "2s"),
    # How long Consul holds a blocking query (it caps it at 10 min).  A half-open connection is
    # noticed after this plus its jitter and a margin.
    "blocking-wait": Key(_STR, "5m"),
    "once": Key(_BOOL, False),
    "bootstrap": Key(_BOOL, False),
    "dry-run": Key(_BOOL, False),
    "consul-addr": Key(_STR),
    "listen": Key(_STR),
    "listen-auth-file": Key(_STR),
    "log-format": Key(_STR, "text"),
    "verbose": Key(_BOOL, False),
}


def _typed(kind: str, value: Any) -> Any:
    """The value as the flag would give it, or raise ValueError."""
    if kind == _BOOL and isinstance(value, bool):
        return value
    if kind == _NUM and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind == _STR and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)  # durations may be written as numbers of seconds
    if kind == _LIST:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(i, str) for i in items):
            return tuple(items)
    if (
        kind == _TABLE
        and isinstance(value, Mapping)
        and all(isinstance(v, (str, int, float, bool)) for v in value.values())
    ):
        return {str(k): (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in value.items()}
    raise ValueError(kind)


def load_file(path: Path, keys: Mapping[str, Key] = WATCH_KEYS) -> dict[str, Any]:
    """Read a TOML settings file; ConfigError names the file and, when one is at fault, the key."""
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: not valid TOML: {exc}") from exc
    values: dict[str, Any] = {}
    for raw_key, value in raw.items():
        key = raw_key.replace("_", "-")
        if key not in keys:
            raise ConfigError(f"config file {path}: unknown key {raw_key!r}")
        try:
            values[key] = _typed(keys[key].kind, value)
        except ValueError:
            raise ConfigError(f"config file {path}: key {raw_key!r} must be {keys[key].kind}") from None
    return values


def resolve(flags: Mapping[str, Any], config_file: Path | None, keys: Mapping[str, Key] = WATCH_KEYS) -> dict[str, Any]:
    """Flags (None, False or empty: not given) over the file over the defaults; ``set`` merged per key."""
    from_file = load_file(config_file, keys) if config_file is not None else {}
    result: dict[str, Any] = {}
    for key, spec in keys.items():
        flag = flags.get(key)
        if key == "set":
            result[key] = {**from_file.get(key, {}), **(flag or {})}
        elif flag is None or flag is False or flag == () or flag == []:
            result[key] = from_file.get(key, spec.default)
        else:
            result[key] = tuple(flag) if isinstance(flag, list) else flag
    return result


def flag_values(**params: Any) -> dict[str, Any]:
    """A command's parameters (``master_socket``, ``set_``) as keys (``master-socket``, ``set``)."""
    return {name.rstrip("_").replace("_", "-"): value for name, value in params.items()}


def require(options: Mapping[str, Any], *keys: str) -> None:
    for key in keys:
        if not options.get(key):
            raise ConfigError(f"missing --{key} (or `{key}` in the config file)")


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (``[::1]:9120`` for IPv6) for ``--listen``."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"invalid --listen {text!r}: expected ADDR:PORT, e.g. 127.0.0.1:9120")
    return host, int(port)


def render_inputs(options: Mapping[str, Any]) -> tuple[Path, dict[str, str]]:
    """The template and ``--set`` values the watcher renders with (``admin_socket`` from
    ``--runtime-socket`` unless set): ``status`` and ``explain`` render what it would write."""
    from .haproxy.render import DEFAULT_TEMPLATE
    from .settings import parse_pairs

    template = Path(options["template"]) if options.get("template") else None
    if template is not None and not template.is_file():
        raise ConfigError(f"--template {template}: no such file")
    values = parse_pairs([f"{k}={v}" for k, v in (options.get("set") or {}).items()], "--set")
    if options.get("runtime-socket"):
        values.setdefault("admin_socket", str(options["runtime-socket"]))
    return template or DEFAULT_TEMPLATE, values


def watch_config(options: Mapping[str, Any]) -> Any:
    """Resolved options -> WatchConfig (checked: every error is a ConfigError naming the flag)."""
    from .consul.watch import WatchTiming
    from .haproxy.master import CommandReloader, MasterSocket, Reloader
    from .haproxy.render import DEFAULT_TEMPLATE
    from .haproxy.validate import Validator
    from .pipeline.watch_config import WatchConfig
    from .settings import parse_duration, parse_pairs, parse_wait
    from .state import checks
    from .state.gate import GatePolicy

    if not options["service"] and not options.get("discover"):
        raise ConfigError("missing --service or --discover (or `service` or `discover = true` in the config file)")
    require(options, "output")
    master_socket, reload_cmd = options.get("master-socket"), options.get("reload-cmd")
    if master_socket and reload_cmd:
        raise ConfigError("give --master-socket or --reload-cmd, not both")
    when_empty, watch_mode = options["when-empty"], options["watch-mode"]
    if when_empty not in ("keep", "empty"):
        raise ConfigError(f"invalid --when-empty {when_empty!r}: use keep or empty")
    if watch_mode not in ("auto", "service", "catalog"):
        raise ConfigError(f"invalid --watch-mode {watch_mode!r}: use auto, service or catalog")
    if watch_mode == "service" and options.get("discover"):
        raise ConfigError(
            "--discover follows the catalog with two blocking queries: it cannot go with --watch-mode service"
        )
    if not 0.01 <= options["gate-share"] <= 1.0:
        raise ConfigError(f"invalid --gate-share {options['gate-share']}: use a share between 0.01 and 1.0")
    template = Path(options["template"]) if options.get("template") else None
    if template is not None and not template.is_file():
        raise ConfigError(f"--template {template}: no such file")
    for name in options["service"]:
        reason = checks.check(checks.SERVICE_NAME, name, "service name")
        if reason:
            raise ConfigError(reason)
    overrides_prefix = overrides_prefix_of(options)
    failover_dcs = failover_dcs_of(options)
    reloader: Reloader | None = None
    if master_socket:
        reloader = MasterSocket(Path(master_socket))
    elif reload_cmd:
        reloader = CommandReloader(reload_cmd)
    validator = Validator(options["check-cmd"])
    validator.ensure_available()
    values = parse_pairs([f"{k}={v}" for k, v in options["set"].items()], "--set")
    runtime_socket = Path(options["runtime-socket"]) if options.get("runtime-socket") else None
    blocking_wait = parse_duration(options["blocking-wait"])
    if not 1.0 <= blocking_wait <= 600.0:
        raise ConfigError(f"invalid --blocking-wait {options['blocking-wait']!r}: use 1s to 10m")
    if runtime_socket is not None:
        values.setdefault("admin_socket", str(runtime_socket))
    return WatchConfig(
        services=tuple(dict.fromkeys(options["service"])),
        template=template or DEFAULT_TEMPLATE,
        output=Path(options["output"]),
        tag=options.get("tag"),
        values=values,
        wait=parse_wait(options["wait"]),
        validator=validator,
        reloader=reloader,
        runtime_socket=runtime_socket,
        drain_grace=parse_duration(options["drain-grace"]),
        watch_mode=watch_mode,
        discover=bool(options.get("discover")),
        gate=GatePolicy(options["gate-share"], parse_duration(options["gate-grace"]), when_empty),
        overrides_prefix=overrides_prefix,
        failover_dcs=failover_dcs,
        timing=WatchTiming(wait=blocking_wait),
    )


def failover_dcs_of(options: Mapping[str, Any]) -> tuple[str, ...]:
    """``--failover-dc`` names checked (ConfigError), in order, once each."""
    from .state.failover import check_dc

    dcs = tuple(dict.fromkeys(options.get("failover-dc") or ()))
    for dc in dcs:
        reason = check_dc(dc)
        if reason:
            raise ConfigError(f"invalid --failover-dc: {reason}")
    if dcs and not options.get("service") and not options.get("discover"):
        raise ConfigError(
            "--failover-dc follows the followed services in other datacenters: give --service or --discover"
        )
    return dcs


def overrides_prefix_of(options: Mapping[str, Any]) -> str:
    """``--overrides-prefix`` checked (ConfigError); "" turns operator overrides off."""
    from .state.overrides import DEFAULT_PREFIX, check_prefix

    prefix = str(options.get("overrides-prefix", DEFAULT_PREFIX))
    reason = check_prefix(prefix)
    if reason:
        raise ConfigError(f"invalid --overrides-prefix: {reason}")
    return prefix
