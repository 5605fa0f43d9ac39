"""PBX domain objects: what ``pjsip.conf`` describes, as Asterisk's res_pjsip understands it.

Each class mirrors one res_pjsip sorcery object type (``transport``, ``endpoint``,
``auth``, ``aor``, ``identify``, ``global``, ``system``); field names are the
Asterisk option names (``100rel`` becomes ``rel100``) and defaults are Asterisk's
documented defaults, except where a field says otherwise.  Free-text options use
``""`` for "not set", exactly as Asterisk does.

Nothing here parses text: ``callway.config.pjsip`` builds these from a file.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TRANSPORT_PROTOCOLS = frozenset({"udp", "tcp", "tls", "ws", "wss"})


@dataclass(frozen=True, slots=True)
class ConfigWarning:
    """A problem in a source file that did not stop loading (an ignored option, say).

    Lives beside the domain objects so that ``PjsipConfig`` can carry its warnings
    without the PBX layer importing the config layer; ``callway.config.errors``
    re-exports it.
    """

    filename: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.filename}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class Transport:
    """A ``type=transport`` section: one listening socket (res_pjsip transport object).

    ``bind_port`` defaults to 5060, or 5061 for ``protocol=tls``; port 0 means
    "let the operating system choose" (useful in tests).
    """

    name: str
    protocol: str = "udp"
    bind_host: str = "0.0.0.0"
    bind_port: int = 5060
    external_signaling_address: str = ""
    external_signaling_port: int = 0
    external_media_address: str = ""
    local_net: tuple[Network, ...] = ()
    domain: str = ""
    cert_file: str = ""
    priv_key_file: str = ""
    ca_list_file: str = ""
    ca_list_path: str = ""
    password: str = field(default="", repr=False)
    method: str = "default"
    verify_client: bool = False
    verify_server: bool = False
    require_client_cert: bool = False
    cipher: tuple[str, ...] = ()
    tos: int = 0
    cos: int = 0
    allow_reload: bool = False
    symmetric_transport: bool = False
    websocket_write_timeout: int = 100

    @property
    def is_secure(self) -> bool:
        """True for TLS-carried signalling (``tls`` and ``wss``)."""
        return self.protocol in ("tls", "wss")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A ``type=endpoint`` section: how to treat one SIP peer (res_pjsip endpoint object).

    ``allow`` is the final ordered codec list after every ``allow=``/``disallow=``
    line was applied in order (Asterisk's ``ast_format_cap`` update rules).  Like
    Asterisk, an endpoint that never says ``allow=`` offers no codecs at all.
    ``identify_by`` defaults to ``("username", "ip")`` as in current Asterisk.
    """

    name: str
    context: str = "default"
    allow: tuple[str, ...] = ()
    transport: str = ""
    auth: tuple[str, ...] = ()
    outbound_auth: tuple[str, ...] = ()
    aors: tuple[str, ...] = ()
    outbound_proxy: str = ""
    callerid: str = ""
    callerid_privacy: str = ""
    callerid_tag: str = ""
    direct_media: bool = True
    direct_media_method: str = "invite"
    disable_direct_media_on_nat: bool = False
    connected_line_method: str = "invite"
    force_rport: bool = True
    rewrite_contact: bool = False
    rtp_symmetric: bool = False
    rtp_ipv6: bool = False
    media_address: str = ""
    bind_rtp_to_media_address: bool = False
    media_encryption: str = "no"
    tos_audio: int = 0  # ToS byte of RTP/RTCP (DSCP << 2: ef = 0xb8)
    media_encryption_optimistic: bool = False
    dtmf_mode: str = "rfc4733"
    ice_support: bool = False
    use_avpf: bool = False
    webrtc: bool = False
    rtp_timeout: int = 0
    rtp_timeout_hold: int = 0
    rtp_keepalive: int = 0
    timers: str = "yes"
    timers_min_se: int = 90
    timers_sess_expires: int = 1800
    rel100: str = "yes"
    from_user: str = ""
    from_domain: str = ""
    contact_user: str = ""
    mailboxes: tuple[str, ...] = ()
    voicemail_extension: str = ""
    aggregate_mwi: bool = True
    language: str = ""
    accountcode: str = ""
    identify_by: tuple[str, ...] = ("username", "ip")
    allow_unauthenticated_options: bool = False
    allow_subscribe: bool = True
    allow_transfer: bool = True
    subscribe_context: str = ""
    message_context: str = ""
    send_pai: bool = False
    send_rpid: bool = False
    trust_id_inbound: bool = False
    trust_id_outbound: bool = False
    user_eq_phone: bool = False
    moh_suggest: str = "default"
    inband_progress: bool = False
    call_group: str = ""
    pickup_group: str = ""
    device_state_busy_at: int = 0
    t38_udptl: bool = False
    sdp_owner: str = "-"
    sdp_session: str = "callway"
    set_var: tuple[tuple[str, str], ...] = ()
    dtls_verify: str = "no"
    dtls_rekey: int = 0
    dtls_cert_file: str = ""
    dtls_private_key: str = ""
    dtls_ca_file: str = ""
    dtls_setup: str = "active"
    dtls_fingerprint: str = "SHA-256"
    dtls_auto_generate_cert: bool = False
    srtp_tag_32: bool = False
    max_audio_streams: int = 1


@dataclass(frozen=True, slots=True)
class Auth:
    """A ``type=auth`` section: digest credentials (res_pjsip auth object, RFC 2617/7616).

    ``auth_type=userpass`` uses ``password``; ``auth_type=md5`` uses ``md5_cred``,
    the hex MD5 of ``username:realm:password``.  An empty ``realm`` means "use the
    global ``default_realm``" for inbound challenges.  Secrets stay out of ``repr``.
    """

    name: str
    auth_type: str = "userpass"
    username: str = ""
    password: str = field(default="", repr=False)
    md5_cred: str = field(default="", repr=False)
    realm: str = ""
    nonce_lifetime: int = 32


@dataclass(frozen=True, slots=True)
class Aor:
    """A ``type=aor`` section: an address of record and its contacts (res_pjsip aor).

    ``max_contacts`` keeps Asterisk's meaning: the default 0 means *no dynamic
    registrations are allowed* (a REGISTER to such an AOR is answered 403), not
    "unlimited".  ``contact`` holds static contact URIs (``sip:`` or ``sips:``).
    Expiration values are seconds; ``qualify_timeout`` is seconds as a float.
    """

    name: str
    max_contacts: int = 0
    remove_existing: bool = False
    remove_unavailable: bool = False
    default_expiration: int = 3600
    minimum_expiration: int = 60
    maximum_expiration: int = 7200
    qualify_frequency: int = 0
    qualify_timeout: float = 3.0
    authenticate_qualify: bool = False
    contact: tuple[str, ...] = ()
    outbound_proxy: str = ""
    support_path: bool = False
    mailboxes: tuple[str, ...] = ()
    voicemail_extension: str = ""

    @property
    def accepts_registrations(self) -> bool:
        """Asterisk rejects every REGISTER to an AOR whose ``max_contacts`` is 0."""
        return self.max_contacts > 0


@dataclass(frozen=True, slots=True)
class Identify:
    """A ``type=identify`` section: pick an endpoint by source address (res_pjsip identify).

    ``match`` holds IP networks; ``match_hosts`` the host names from ``match=``
    that must be resolved by whoever uses them (this layer does no DNS).
    """

    name: str
    endpoint: str = ""
    match: tuple[Network, ...] = ()
    match_hosts: tuple[str, ...] = ()
    match_header: str = ""
    srv_lookups: bool = True


@dataclass(frozen=True, slots=True)
class Global:
    """The ``type=global`` section: process-wide SIP settings (res_pjsip global object)."""

    name: str = "global"
    default_realm: str = "asterisk"
    user_agent: str = "callway"
    endpoint_identifier_order: tuple[str, ...] = ("ip", "username", "anonymous")
    keep_alive_interval: int = 90
    max_forwards: int = 70
    default_outbound_endpoint: str = "default_outbound_endpoint"
    default_from_user: str = "asterisk"
    default_voicemail_extension: str = ""
    contact_expiration_check_interval: int = 30
    max_initial_qualify_time: int = 0
    regcontext: str = ""
    disable_multi_domain: bool = False
    ignore_uri_user_options: bool = False
    debug: bool = False


@dataclass(frozen=True, slots=True)
class System:
    """The ``type=system`` section: SIP stack timers (RFC 3261 T1 and Timer B, in ms)."""

    name: str = "system"
    timer_t1: int = 500
    timer_b: int = 32000
    compact_headers: bool = False
    disable_tcp_switch: bool = True


@dataclass(frozen=True, slots=True)
class PjsipConfig:
    """Everything one ``pjsip.conf`` (with its includes) defines, objects keyed by name.

    The dicts are built once by the parser and must be treated as read-only.
    """

    transports: dict[str, Transport] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    auths: dict[str, Auth] = field(default_factory=dict)
    aors: dict[str, Aor] = field(default_factory=dict)
    identifies: dict[str, Identify] = field(default_factory=dict)
    global_: Global = field(default_factory=Global)
    system: System = field(default_factory=System)
    warnings: tuple[ConfigWarning, ...] = ()
