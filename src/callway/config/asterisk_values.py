"""Value syntaxes shared by Asterisk configuration files (booleans, numbers, lists, codecs).

Each converter takes the raw option text and returns a Python value, or raises
``BadValueError`` whose message says what was expected; callers add file and line.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from callway.pbx.model import Network

TRUE_WORDS = frozenset({"yes", "true", "y", "t", "1", "on"})
FALSE_WORDS = frozenset({"no", "false", "n", "f", "0", "off"})

AUDIO_CODECS = (
    "ulaw", "alaw", "gsm", "g722", "g726", "g726aal2", "g729", "g723", "ilbc", "lpc10",
    "speex", "speex16", "speex32", "opus", "silk8", "silk12", "silk16", "silk24",
    "siren7", "siren14", "adpcm", "testlaw", "codec2",
    "slin", "slin12", "slin16", "slin24", "slin32", "slin44", "slin48", "slin96", "slin192",
)  # fmt: skip
"""Asterisk's audio format names, in the order ``allow=all`` adds them."""

OTHER_CODECS = ("h261", "h263", "h263p", "h264", "h265", "mpeg4", "vp8", "vp9", "jpeg", "png",
                "t140", "t140red", "red")  # fmt: skip
KNOWN_CODECS = frozenset(AUDIO_CODECS + OTHER_CODECS)


class BadValueError(ValueError):
    """The option text does not fit the option's syntax; ``str()`` says what would."""


def parse_bool(raw: str) -> bool:
    """Asterisk's ``ast_true``/``ast_false`` words: yes/no, true/false, on/off, 1/0, y/n, t/f."""
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BadValueError("yes or no (also true/false, on/off, 1/0)")


def parse_int(raw: str, minimum: int = 0, maximum: int | None = None) -> int:
    """A decimal integer in ``[minimum, maximum]``."""
    text = raw.strip()
    expected = _range_text("a whole number", minimum, maximum)
    digits = text.removeprefix("-").removeprefix("+")
    if not (digits.isascii() and digits.isdigit()):
        raise BadValueError(expected)
    value = int(text)
    if value < minimum or (maximum is not None and value > maximum):
        raise BadValueError(expected)
    return value


def parse_float(raw: str, minimum: float = 0.0) -> float:
    """A decimal number not below ``minimum``."""
    try:
        value = float(raw.strip())
    except ValueError:
        value = float("nan")
    if not value >= minimum or value == float("inf"):
        raise BadValueError(f"a number of at least {minimum:g}")
    return value


def parse_choice(raw: str, choices: Iterable[str]) -> str:
    """One word out of ``choices`` (case-insensitive), returned lower-cased."""
    allowed = tuple(choices)
    word = raw.strip().lower()
    if word not in allowed:
        raise BadValueError("one of " + ", ".join(allowed))
    return word


def split_list(raw: str) -> tuple[str, ...]:
    """A comma-separated list, items trimmed, empty items dropped."""
    return tuple(item for item in (part.strip() for part in raw.split(",")) if item)


def parse_choice_list(raw: str, choices: Iterable[str]) -> tuple[str, ...]:
    """A comma-separated list whose every item is one of ``choices``."""
    allowed = tuple(choices)
    return tuple(parse_choice(item, allowed) for item in split_list(raw))


def parse_network(raw: str) -> Network:
    """An IP network: ``10.0.0.0/8``, ``10.0.0.0/255.0.0.0``, ``fe80::/10`` or a bare address."""
    try:
        return ipaddress.ip_network(raw.strip(), strict=False)
    except ValueError:
        raise BadValueError("an IP network such as 192.168.0.0/16") from None


def parse_networks(raw: str) -> tuple[Network, ...]:
    """A comma-separated list of IP networks."""
    return tuple(parse_network(item) for item in split_list(raw))


def parse_host_port(raw: str) -> tuple[str, int | None]:
    """``ADDR``, ``ADDR:PORT``, ``[V6]`` or ``[V6]:PORT`` with a literal IP address.

    Returns the address (IPv6 without brackets) and the port, or None when absent.
    """
    text = raw.strip()
    expected = "an IP address with an optional port, such as 0.0.0.0:5060 or [::]:5060"
    host, port_text = _split_host_port(text, expected)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise BadValueError(expected) from None
    if port_text is None:
        return host, None
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise BadValueError(expected)
    return host, int(port_text)


def _split_host_port(text: str, expected: str) -> tuple[str, str | None]:
    if text.startswith("["):
        host, close, rest = text[1:].partition("]")
        if not close or (rest and not rest.startswith(":")):
            raise BadValueError(expected)
        return host, (rest[1:] if rest else None)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def parse_set_var(raw: str) -> tuple[tuple[str, str], ...]:
    """``set_var=NAME=value``: one (name, value) pair."""
    name, eq, value = raw.partition("=")
    if not eq or not name.strip():
        raise BadValueError("NAME=value")
    return ((name.strip(), value.strip()),)


def apply_codecs(current: tuple[str, ...], raw: str, allow: bool) -> tuple[str, ...]:
    """Apply one ``allow=``/``disallow=`` line to the codec list, Asterisk style.

    Items are comma-separated; ``all`` means every known audio codec; a leading
    ``!`` inverts the line's sense for that item; ``:20`` framing suffixes are
    ignored.  A codec already allowed keeps its place in the order.
    """
    codecs = list(current)
    for item in split_list(raw.lower()):
        adding = allow != item.startswith("!")
        name = item.lstrip("!").partition(":")[0].strip()
        names = AUDIO_CODECS if name == "all" else (_known_codec(name),)
        for codec in names:
            if adding and codec not in codecs:
                codecs.append(codec)
            elif not adding and codec in codecs:
                codecs.remove(codec)
    return tuple(codecs)


def _known_codec(name: str) -> str:
    if name not in KNOWN_CODECS:
        raise BadValueError(f"codec names such as ulaw, alaw, g722, opus or all (not '{name}')")
    return name


def _range_text(what: str, minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"{what} of at least {minimum}"
    return f"{what} from {minimum} to {maximum}"


_DSCP_NAMES = {"ef": 46, **{f"cs{n}": 8 * n for n in range(8)}}
_DSCP_NAMES |= {f"af{c}{d}": 8 * c + 2 * d for c in range(1, 5) for d in range(1, 4)}


def parse_tos(raw: str) -> int:
    """A ToS byte: a number (0-255) or a DSCP name such as ``ef``, ``cs3``, ``af41``."""
    word = raw.strip().lower()
    if word in _DSCP_NAMES:
        return _DSCP_NAMES[word] << 2
    try:
        value = int(word, 0)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise BadValueError("a DSCP name (ef, cs0-cs7, af11-af43) or a number from 0 to 255")
    return value
