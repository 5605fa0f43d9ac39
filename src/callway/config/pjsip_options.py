"""The option tables of ``pjsip.conf``: which keys each section type takes, and their syntax.

Names and value syntaxes follow Asterisk's res_pjsip configuration reference
(``pjsip.conf.sample`` and the "Asterisk Configuration for res_pjsip" pages).
Each entry maps an option name to the model field it sets and an ``apply``
function ``(previous_value, raw_text) -> new_value``; that one shape covers
plain settings (the last line wins), list options that accumulate
(``local_net``, ``contact``, ``set_var``) and ``allow``/``disallow``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callway.config.asterisk_values import (
    BadValueError,
    apply_codecs,
    parse_bool,
    parse_choice,
    parse_choice_list,
    parse_float,
    parse_host_port,
    parse_int,
    parse_network,
    parse_networks,
    parse_set_var,
    parse_tos,
    split_list,
)
from callway.pbx.model import TRANSPORT_PROTOCOLS

Apply = Callable[[Any, str], Any]


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """One option: the model field it sets and how a line changes that field."""

    field: str
    apply: Apply


@dataclass(frozen=True, slots=True)
class TypeOptions:
    """The options of one section type, plus Asterisk options callway knowingly ignores."""

    options: Mapping[str, OptionSpec]
    ignored: frozenset[str] = frozenset()
    pseudo: Mapping[str, Any] = field(default_factory=dict)
    """Defaults of table fields that are not model fields (``bind``, ``match``)."""


def _scalar(convert: Callable[[str], Any]) -> Apply:
    return lambda _old, raw: convert(raw)


def _extend(convert: Callable[[str], tuple[Any, ...]]) -> Apply:
    return lambda old, raw: (*old, *convert(raw))


def _choice(*choices: str) -> Apply:
    return _scalar(lambda raw: parse_choice(raw, choices))


def _integer(minimum: int = 0, maximum: int | None = None) -> Apply:
    return _scalar(lambda raw: parse_int(raw, minimum, maximum))


def _codecs(allow: bool) -> Apply:
    return lambda old, raw: apply_codecs(old, raw, allow)


TEXT = _scalar(lambda raw: raw)
BOOL = _scalar(parse_bool)
INT = _integer()
LIST = _scalar(split_list)


def _table(
    entries: Mapping[str, Apply], renames: Mapping[str, str] | None = None
) -> dict[str, OptionSpec]:
    names = renames or {}
    return {key: OptionSpec(names.get(key, key), apply) for key, apply in entries.items()}


_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOSTNAME = re.compile(rf"^(?=.*[a-z]){_LABEL}(\.{_LABEL})*$")


def _match_item(item: str) -> str:
    try:
        parse_network(item)
    except BadValueError:
        if not _HOSTNAME.match(item.lower()):
            raise BadValueError("IP addresses, networks or host names, comma-separated") from None
    return item


def _contact_uris(raw: str) -> tuple[str, ...]:
    uris = split_list(raw)
    for uri in uris:
        if not uri.lower().startswith(("sip:", "sips:")):
            raise BadValueError("SIP URIs such as sip:alice@192.0.2.10:5060, comma-separated")
    return uris


def _fingerprint(raw: str) -> str:
    return parse_choice(raw, ("sha-1", "sha-256")).upper()


TRANSPORT = TypeOptions(
    _table({
        "protocol": _choice(*sorted(TRANSPORT_PROTOCOLS)),
        "bind": _scalar(parse_host_port),
        "external_signaling_address": TEXT,
        "external_signaling_port": _integer(0, 65535),
        "external_media_address": TEXT,
        "local_net": _extend(parse_networks),
        "domain": TEXT,
        "cert_file": TEXT,
        "priv_key_file": TEXT,
        "ca_list_file": TEXT,
        "ca_list_path": TEXT,
        "password": TEXT,
        "method": _choice("default", "unspecified", "tlsv1", "tlsv1_1", "tlsv1_2", "tlsv1_3",
                          "sslv2", "sslv3", "sslv23"),
        "verify_client": BOOL,
        "verify_server": BOOL,
        "require_client_cert": BOOL,
        "cipher": LIST,
        "tos": _scalar(parse_tos),
        "cos": _integer(0, 7),
        "allow_reload": BOOL,
        "symmetric_transport": BOOL,
        "websocket_write_timeout": INT,
    }),
    ignored=frozenset({"async_operations", "allow_wildcard_certs"}),
    pseudo={"bind": ("0.0.0.0", None)},
)  # fmt: skip

ENDPOINT = TypeOptions(
    _table({
        "context": TEXT,
        "allow": _codecs(True),
        "disallow": _codecs(False),
        "transport": TEXT,
        "auth": LIST,
        "outbound_auth": LIST,
        "aors": LIST,
        "outbound_proxy": TEXT,
        "callerid": TEXT,
        "callerid_privacy": _choice(
            "allowed_not_screened", "allowed_passed_screen", "allowed_failed_screen", "allowed",
            "prohib_not_screened", "prohib_passed_screen", "prohib_failed_screen", "prohib",
            "unavailable"),
        "callerid_tag": TEXT,
        "direct_media": BOOL,
        "direct_media_method": _choice("invite", "reinvite", "update"),
        "disable_direct_media_on_nat": BOOL,
        "connected_line_method": _choice("invite", "reinvite", "update"),
        "force_rport": BOOL,
        "rewrite_contact": BOOL,
        "rtp_symmetric": BOOL,
        "rtp_ipv6": BOOL,
        "media_address": TEXT,
        "bind_rtp_to_media_address": BOOL,
        "media_encryption": _choice("no", "sdes", "dtls"),
        "media_encryption_optimistic": BOOL,
        "dtmf_mode": _choice("rfc4733", "inband", "info", "auto", "auto_info"),
        "ice_support": BOOL,
        "use_avpf": BOOL,
        "webrtc": BOOL,
        "rtp_timeout": INT,
        "rtp_timeout_hold": INT,
        "rtp_keepalive": INT,
        "timers": _choice("no", "yes", "required", "always", "forced"),
        "timers_min_se": _integer(90),
        "timers_sess_expires": _integer(90),
        "100rel": _choice("no", "yes", "required", "peer_supported"),
        "from_user": TEXT,
        "from_domain": TEXT,
        "contact_user": TEXT,
        "mailboxes": LIST,
        "voicemail_extension": TEXT,
        "aggregate_mwi": BOOL,
        "language": TEXT,
        "accountcode": TEXT,
        "identify_by": _scalar(lambda raw: parse_choice_list(
            raw, ("username", "auth_username", "ip", "header", "request_uri"))),
        "allow_unauthenticated_options": BOOL,
        "allow_subscribe": BOOL,
        "allow_transfer": BOOL,
        "subscribe_context": TEXT,
        "message_context": TEXT,
        "send_pai": BOOL,
        "send_rpid": BOOL,
        "trust_id_inbound": BOOL,
        "trust_id_outbound": BOOL,
        "user_eq_phone": BOOL,
        "moh_suggest": TEXT,
        "inband_progress": BOOL,
        "call_group": TEXT,
        "pickup_group": TEXT,
        "device_state_busy_at": INT,
        "t38_udptl": BOOL,
        "sdp_owner": TEXT,
        "sdp_session": TEXT,
        "set_var": _extend(parse_set_var),
        "dtls_verify": _choice("no", "yes", "fingerprint", "certificate"),
        "dtls_rekey": INT,
        "dtls_cert_file": TEXT,
        "dtls_private_key": TEXT,
        "dtls_ca_file": TEXT,
        "dtls_setup": _choice("active", "passive", "actpass"),
        "dtls_fingerprint": _scalar(_fingerprint),
        "dtls_auto_generate_cert": BOOL,
        "srtp_tag_32": BOOL,
        "tos_audio": _scalar(parse_tos),
        "max_audio_streams": _integer(1),
    }, renames={"100rel": "rel100", "disallow": "allow"}),
    ignored=frozenset({
        "tos_video", "cos_audio", "cos_video", "allow_overlap", "rtp_engine",
        "one_touch_recording", "record_on_feature", "record_off_feature", "fax_detect",
        "fax_detect_timeout", "t38_udptl_ec", "t38_udptl_maxdatagram", "t38_udptl_nat",
        "t38_udptl_ipv6", "tone_zone", "moh_passthrough", "send_diversion", "send_history_info",
        "redirect_method", "notify_early_inuse_ringing", "refer_blind_progress", "rpid_immediate",
        "bundle", "max_video_streams", "named_call_group", "named_pickup_group",
        "asymmetric_rtp_codec", "suppress_q850_reason_headers", "ignore_183_without_sdp",
        "preferred_codec_only", "incoming_call_offer_pref", "outgoing_call_offer_pref",
        "dtls_ca_path", "dtls_cipher", "sdp_ip_address", "stir_shaken",
    }),
)  # fmt: skip

AUTH = TypeOptions(
    _table({
        "auth_type": _choice("userpass", "md5"),
        "username": TEXT,
        "password": TEXT,
        "md5_cred": TEXT,
        "realm": TEXT,
        "nonce_lifetime": _integer(1),
    }),
)

AOR = TypeOptions(
    _table({
        "max_contacts": INT,
        "remove_existing": BOOL,
        "remove_unavailable": BOOL,
        "default_expiration": INT,
        "minimum_expiration": INT,
        "maximum_expiration": INT,
        "qualify_frequency": _integer(0, 86400),
        "qualify_timeout": _scalar(parse_float),
        "authenticate_qualify": BOOL,
        "contact": _extend(_contact_uris),
        "outbound_proxy": TEXT,
        "support_path": BOOL,
        "mailboxes": LIST,
        "voicemail_extension": TEXT,
    }),
)

IDENTIFY = TypeOptions(
    _table({
        "endpoint": TEXT,
        "match": _extend(lambda raw: tuple(_match_item(item) for item in split_list(raw))),
        "match_header": TEXT,
        "srv_lookups": BOOL,
    }),
    pseudo={"match": ()},
)

GLOBAL = TypeOptions(
    _table({
        "default_realm": TEXT,
        "user_agent": TEXT,
        "endpoint_identifier_order": LIST,
        "keep_alive_interval": INT,
        "max_forwards": _integer(1, 255),
        "default_outbound_endpoint": TEXT,
        "default_from_user": TEXT,
        "default_voicemail_extension": TEXT,
        "contact_expiration_check_interval": INT,
        "max_initial_qualify_time": INT,
        "regcontext": TEXT,
        "disable_multi_domain": BOOL,
        "ignore_uri_user_options": BOOL,
        "debug": BOOL,
    }),
    ignored=frozenset({
        "mwi_tps_queue_high", "mwi_tps_queue_low", "mwi_disable_initial_unsolicited",
        "unidentified_request_count", "unidentified_request_period",
        "unidentified_request_prune_interval", "send_contact_status_on_update_registration",
        "taskprocessor_overload_trigger", "norefersub", "use_callerid_contact",
    }),
)  # fmt: skip

SYSTEM = TypeOptions(
    _table({
        "timer_t1": _integer(100),
        "timer_b": _integer(500),
        "compact_headers": BOOL,
        "disable_tcp_switch": BOOL,
    }),
    ignored=frozenset({
        "threadpool_initial_size", "threadpool_auto_increment", "threadpool_idle_timeout",
        "threadpool_max_size", "follow_early_media_fork", "accept_multiple_sdp_answers",
        "disable_rport",
    }),
)  # fmt: skip

TYPE_OPTIONS: Mapping[str, TypeOptions] = {
    "transport": TRANSPORT,
    "endpoint": ENDPOINT,
    "auth": AUTH,
    "aor": AOR,
    "identify": IDENTIFY,
    "global": GLOBAL,
    "system": SYSTEM,
}
