"""``pjsip.conf`` -> ``PjsipConfig``: typed sections, checked values, checked references.

Reads the file the way Asterisk's res_pjsip (through sorcery) reads it: each
non-template section becomes one object of the kind its ``type=`` names, and the
same section name may be reused for objects of different kinds (``[8005]`` as
endpoint, auth and aor).  Unlike Asterisk, which logs and carries on, anything
that would leave a phone unreachable is a ``ConfigError`` naming file and line:
a missing or unknown ``type=``, a bad value, a duplicate object, or a reference
(``transport=``, ``auth=``, ``outbound_auth=``, ``aors=``, identify
``endpoint=``) to an object that does not exist.  Options callway does not know
or does not implement, and section types it does not implement, are
``ConfigWarning``s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from callway.config.asterisk_values import BadValueError, parse_network
from callway.config.errors import ConfigError, ConfigWarning
from callway.config.ini import Loader, Option, Section, parse_ini, read_text_file
from callway.config.pjsip_options import TYPE_OPTIONS, TypeOptions
from callway.pbx.model import (
    Aor,
    Auth,
    Endpoint,
    Global,
    Identify,
    PjsipConfig,
    System,
    Transport,
)

IGNORED_TYPES = frozenset({
    "registration", "domain_alias", "contact", "acl", "phoneprov", "resource_list",
    "outbound-publish", "inbound-publication", "asterisk-publication",
})  # fmt: skip
"""Section types Asterisk knows that callway accepts and ignores (with a warning)."""

KNOWN_TYPES = (*TYPE_OPTIONS, *sorted(IGNORED_TYPES))

_FACTORIES: Mapping[str, Callable[[str], Any]] = {
    "transport": Transport,
    "endpoint": Endpoint,
    "auth": Auth,
    "aor": Aor,
    "identify": Identify,
    "global": Global,
    "system": System,
}

_REFERENCES = (
    ("endpoint", "transport", "transport"),
    ("endpoint", "auth", "auth"),
    ("endpoint", "outbound_auth", "auth"),
    ("endpoint", "aors", "aor"),
    ("identify", "endpoint", "endpoint"),
)
"""(kind, field, kind referred to): the cross-references checked after loading."""

_SINGLETONS = frozenset({"global", "system"})


@dataclasses.dataclass(frozen=True, slots=True)
class _Built:
    kind: str
    obj: Any
    section: Section
    where: Mapping[str, Option]
    """The option line that last set each field, to point errors at it."""


def parse_pjsip(
    text: str, filename: str = "pjsip.conf", loader: Loader | None = None
) -> PjsipConfig:
    """Parse ``pjsip.conf`` text (``#include``s fetched through ``loader``) into domain objects.

    Raises ConfigError at the first problem; warnings are in ``result.warnings``.
    """
    return build_pjsip(parse_ini(text, filename, loader))


def load_pjsip(path: Path) -> PjsipConfig:
    """Read and parse a ``pjsip.conf`` file; includes are resolved next to it."""
    name, text = read_text_file(str(path))
    return parse_pjsip(text, name, read_text_file)


def build_pjsip(sections: Iterable[Section]) -> PjsipConfig:
    """Turn parsed INI sections into a checked ``PjsipConfig``."""
    warnings: list[ConfigWarning] = []
    built: list[_Built] = []
    for section in sections:
        if section.is_template:
            continue
        kind = _section_kind(section, warnings)
        if kind is not None:
            built.append(_build(kind, section, warnings))
    _check_duplicates(built)
    _check_references(built)
    for item in built:
        _check_object(item, warnings)
    return _assemble(built, warnings)


def _section_kind(section: Section, warnings: list[ConfigWarning]) -> str | None:
    types = [opt for opt in section.options if opt.key.lower() == "type"]
    expected = "expected one of " + ", ".join(KNOWN_TYPES)
    if not types:
        problem = f"section [{section.name}] has no type= option ({expected})"
        raise ConfigError(section.filename, section.line, problem)
    for opt in types[1:]:
        if opt.value.lower() != types[0].value.lower():
            problem = f"section [{section.name}] says type={types[0].value} and type={opt.value}"
            raise ConfigError(opt.filename, opt.line, problem)
    kind = types[0].value.lower()
    if kind in IGNORED_TYPES:
        message = f"section type '{kind}' of [{section.name}] is not supported yet; ignored"
        warnings.append(ConfigWarning(types[0].filename, types[0].line, message))
        return None
    if kind not in TYPE_OPTIONS:
        problem = f"unknown section type '{types[0].value}' ({expected})"
        raise ConfigError(types[0].filename, types[0].line, problem)
    return kind


def _build(kind: str, section: Section, warnings: list[ConfigWarning]) -> _Built:
    table = TYPE_OPTIONS[kind]
    base = _FACTORIES[kind](section.name)
    values: dict[str, Any] = {}
    where: dict[str, Option] = {}
    for opt in section.options:
        key = opt.key.lower()
        spec = table.options.get(key)
        if key == "type":
            continue
        if spec is None:
            warnings.append(_unknown_option(kind, table, section, opt))
            continue
        previous = values[spec.field] if spec.field in values else _default(table, base, spec.field)
        values[spec.field] = _apply(kind, section, opt, spec.apply, previous)
        where[spec.field] = opt
    obj = _finish(kind, base, values)
    return _Built(kind, obj, section, where)


def _default(table: TypeOptions, base: object, field: str) -> Any:
    return table.pseudo[field] if field in table.pseudo else getattr(base, field)


def _apply(
    kind: str, section: Section, opt: Option, apply: Callable[[Any, str], Any], previous: Any
) -> Any:
    try:
        return apply(previous, opt.value)
    except BadValueError as exc:
        problem = (
            f"bad value '{opt.value}' for {kind} option '{opt.key}' in [{section.name}]: "
            f"expected {exc}"
        )
        raise ConfigError(opt.filename, opt.line, problem) from None


def _unknown_option(kind: str, table: TypeOptions, section: Section, opt: Option) -> ConfigWarning:
    if opt.key.lower() in table.ignored:
        message = f"{kind} option '{opt.key}' in [{section.name}] is not supported yet; ignored"
    else:
        message = f"unknown {kind} option '{opt.key}' in [{section.name}]; ignored"
    return ConfigWarning(opt.filename, opt.line, message)


def _finish(kind: str, base: Any, values: dict[str, Any]) -> Any:
    if kind == "transport":
        host, port = values.pop("bind", (base.bind_host, None))
        if port is None:
            port = 5061 if values.get("protocol", base.protocol) == "tls" else 5060
        values |= {"bind_host": host, "bind_port": port}
    if kind == "identify":
        items = values.pop("match", ())
        values["match"] = tuple(parse_network(i) for i in items if not _is_host(i))
        values["match_hosts"] = tuple(i for i in items if _is_host(i))
    return dataclasses.replace(base, **values)


def _is_host(item: str) -> bool:
    try:
        parse_network(item)
    except BadValueError:
        return True
    return False


def _check_duplicates(built: list[_Built]) -> None:
    seen: dict[tuple[str, str], Section] = {}
    for item in built:
        key = (item.kind, "" if item.kind in _SINGLETONS else item.section.name)
        first = seen.setdefault(key, item.section)
        if first is not item.section:
            what = (
                f"a second type={item.kind} section"
                if item.kind in _SINGLETONS
                else f"duplicate {item.kind} '{item.section.name}'"
            )
            problem = f"{what} (first defined at {first.filename}:{first.line})"
            raise ConfigError(item.section.filename, item.section.line, problem)


def _check_references(built: list[_Built]) -> None:
    names = {(item.kind, item.section.name) for item in built}
    for item in built:
        for kind, field, target in _REFERENCES:
            if item.kind != kind:
                continue
            value = getattr(item.obj, field)
            for name in (value,) if isinstance(value, str) else value:
                if name and (target, name) not in names:
                    _missing_reference(item, field, target, name)


def _missing_reference(item: _Built, field: str, target: str, name: str) -> None:
    opt = item.where[field]
    problem = (
        f"{item.kind} '{item.section.name}' has {opt.key}={opt.value}, but there is no "
        f"{target} '{name}' (a [{name}] section with type={target})"
    )
    raise ConfigError(opt.filename, opt.line, problem)


def _check_object(item: _Built, warnings: list[ConfigWarning]) -> None:
    checks: Mapping[str, Callable[[_Built, list[ConfigWarning]], None]] = {
        "endpoint": _check_endpoint,
        "auth": _check_auth,
        "aor": _check_aor,
        "identify": _check_identify,
    }
    check = checks.get(item.kind)
    if check is not None:
        check(item, warnings)


def _error_at(item: _Built, field: str, problem: str) -> ConfigError:
    opt = item.where.get(field)
    if opt is None:
        return ConfigError(item.section.filename, item.section.line, problem)
    return ConfigError(opt.filename, opt.line, problem)


def _warn(item: _Built, warnings: list[ConfigWarning], message: str) -> None:
    warnings.append(ConfigWarning(item.section.filename, item.section.line, message))


def _check_endpoint(item: _Built, warnings: list[ConfigWarning]) -> None:
    endpoint: Endpoint = item.obj
    if endpoint.timers_sess_expires < endpoint.timers_min_se:
        problem = (
            f"endpoint '{endpoint.name}': timers_sess_expires={endpoint.timers_sess_expires} "
            f"is below timers_min_se={endpoint.timers_min_se}"
        )
        raise _error_at(item, "timers_sess_expires", problem)
    if not endpoint.allow:
        message = f"endpoint '{endpoint.name}' allows no codecs, so its calls will fail"
        _warn(item, warnings, message)


def _check_auth(item: _Built, warnings: list[ConfigWarning]) -> None:
    auth: Auth = item.obj
    if auth.auth_type == "md5" and not _is_md5(auth.md5_cred):
        problem = f"auth '{auth.name}' has auth_type=md5 but md5_cred is not 32 hex digits"
        raise _error_at(item, "md5_cred", problem)
    if not auth.username:
        _warn(item, warnings, f"auth '{auth.name}' has no username=")
    if auth.auth_type == "userpass" and not auth.password:
        _warn(item, warnings, f"auth '{auth.name}' has an empty password")


def _is_md5(text: str) -> bool:
    return len(text) == 32 and all(ch in "0123456789abcdefABCDEF" for ch in text)


def _check_aor(item: _Built, warnings: list[ConfigWarning]) -> None:
    aor: Aor = item.obj
    if not aor.minimum_expiration <= aor.default_expiration <= aor.maximum_expiration:
        message = (
            f"aor '{aor.name}': default_expiration={aor.default_expiration} is outside "
            f"{aor.minimum_expiration}..{aor.maximum_expiration} and will be clamped"
        )
        _warn(item, warnings, message)
    if aor.max_contacts == 0 and not aor.contact:
        message = (
            f"aor '{aor.name}' has max_contacts=0 and no contact=, so every REGISTER to it "
            f"is refused (set max_contacts=1)"
        )
        _warn(item, warnings, message)


def _check_identify(item: _Built, _warnings: list[ConfigWarning]) -> None:
    identify: Identify = item.obj
    if not identify.endpoint:
        raise _error_at(item, "endpoint", f"identify '{identify.name}' has no endpoint=")
    if not (identify.match or identify.match_hosts or identify.match_header):
        problem = f"identify '{identify.name}' needs match= or match_header="
        raise _error_at(item, "match", problem)


def _assemble(built: list[_Built], warnings: list[ConfigWarning]) -> PjsipConfig:
    def by_name(kind: str) -> dict[str, Any]:
        return {item.section.name: item.obj for item in built if item.kind == kind}

    singles = {item.kind: item.obj for item in built if item.kind in _SINGLETONS}
    return PjsipConfig(
        transports=by_name("transport"),
        endpoints=by_name("endpoint"),
        auths=by_name("auth"),
        aors=by_name("aor"),
        identifies=by_name("identify"),
        global_=singles.get("global", Global()),
        system=singles.get("system", System()),
        warnings=tuple(warnings),
    )
