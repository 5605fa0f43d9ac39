"""pjsip.conf -> PjsipConfig: the seed file, defaults, values, references and every error path."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from callway.config.defaults import DEMO_PJSIP_CONF
from callway.config.errors import ConfigError, ConfigWarning
from callway.config.ini import Loader
from callway.config.pjsip import load_pjsip, parse_pjsip
from callway.config.pjsip_options import TYPE_OPTIONS
from callway.pbx import model
from callway.pbx.model import Aor, Auth, Endpoint, Global, PjsipConfig, System, Transport

# The file from the source document (SEED.md section 2), byte for byte.
SEED_PJSIP_CONF = """\
; pjsip.conf
[transport-udp]
type=transport
protocol=udp
bind=0.0.0.0:5061

[8005]
type=endpoint
context=from-external
disallow=all
allow=ulaw
transport=transport-udp
auth=8005
aors=8005

[8005]
type=auth
auth_type=userpass
password=8005
username=8005

[8005]
type=aor
max_contacts=1

; ... the same three sections again for 8006
"""

ENDPOINT_8005 = "[8005]\ntype=endpoint\nallow=ulaw\n"


def parse(text: str, loader: Loader | None = None) -> PjsipConfig:
    return parse_pjsip(text, "pjsip.conf", loader)


def error_of(text: str, loader: Loader | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(text, loader)
    return caught.value


def endpoint(body: str, others: str = "") -> Endpoint:
    return parse(f"{others}[e]\ntype=endpoint\n{body}\n").endpoints["e"]


# --- the seed configuration -----------------------------------------------------------------


def test_seed_file_parses_unchanged() -> None:
    config = parse(SEED_PJSIP_CONF)
    assert config.transports == {
        "transport-udp": Transport(name="transport-udp", protocol="udp", bind_port=5061)
    }
    assert list(config.endpoints) == ["8005"]
    ep = config.endpoints["8005"]
    assert ep.context == "from-external"
    assert ep.allow == ("ulaw",)
    assert ep.transport == "transport-udp"
    assert ep.auth == ("8005",)
    assert ep.aors == ("8005",)
    assert config.auths["8005"] == Auth(
        name="8005", auth_type="userpass", username="8005", password="8005"
    )
    assert config.aors["8005"] == Aor(name="8005", max_contacts=1)
    assert config.warnings == ()


def test_demo_config_has_8005_and_8006() -> None:
    config = parse(DEMO_PJSIP_CONF)
    assert list(config.endpoints) == ["8005", "8006"]
    assert list(config.auths) == ["8005", "8006"]
    assert list(config.aors) == ["8005", "8006"]
    assert config.auths["8006"].password == "8006"
    assert config.endpoints["8006"] == dataclasses.replace(
        config.endpoints["8005"], name="8006", auth=("8006",), aors=("8006",)
    )
    assert config.warnings == ()


def test_demo_config_starts_with_the_seed_text() -> None:
    seed_without_comment = SEED_PJSIP_CONF.split("; ... the same")[0]
    assert DEMO_PJSIP_CONF.startswith(seed_without_comment)


def test_secrets_are_not_in_repr() -> None:
    auth = parse(DEMO_PJSIP_CONF).auths["8005"]
    assert "password" not in repr(auth)
    assert "8005" in repr(auth)


# --- defaults -------------------------------------------------------------------------------


def test_asterisk_defaults() -> None:
    ep = endpoint("")
    assert ep.context == "default"
    assert (ep.direct_media, ep.force_rport, ep.rewrite_contact, ep.rtp_symmetric) == (
        True, True, False, False)  # fmt: skip
    assert (ep.media_encryption, ep.dtmf_mode, ep.ice_support) == ("no", "rfc4733", False)
    assert (ep.rtp_timeout, ep.rtp_timeout_hold) == (0, 0)
    assert (ep.timers, ep.timers_min_se, ep.timers_sess_expires) == ("yes", 90, 1800)
    assert ep.allow == ()
    aor = parse("[a]\ntype=aor\ncontact=sip:x@192.0.2.1\n").aors["a"]
    assert (aor.max_contacts, aor.remove_existing) == (0, False)
    assert (aor.default_expiration, aor.minimum_expiration, aor.maximum_expiration) == (
        3600, 60, 7200)  # fmt: skip
    assert (aor.qualify_frequency, aor.qualify_timeout) == (0, 3.0)
    assert not aor.accepts_registrations
    config = parse("")
    assert config.global_ == Global()
    assert (config.global_.default_realm, config.global_.user_agent) == ("asterisk", "callway")
    assert (config.global_.keep_alive_interval, config.global_.max_forwards) == (90, 70)
    assert config.system == System()


def test_transport_default_ports() -> None:
    config = parse(
        "[u]\ntype=transport\n"
        "[t]\ntype=transport\nprotocol=tls\nbind=192.0.2.1\n"
        "[t6]\ntype=transport\nbind=[2001:db8::1]:5070\nprotocol=TCP\n"
        "[any]\ntype=transport\nbind=127.0.0.1:0\n"
    )
    got = {name: (t.protocol, t.bind_host, t.bind_port) for name, t in config.transports.items()}
    assert got == {
        "u": ("udp", "0.0.0.0", 5060),
        "t": ("tls", "192.0.2.1", 5061),
        "t6": ("tcp", "2001:db8::1", 5070),
        "any": ("udp", "127.0.0.1", 0),
    }
    assert config.transports["t"].is_secure
    assert not config.transports["u"].is_secure


def test_transport_options() -> None:
    t = parse(
        "[tls]\ntype=transport\nprotocol=tls\nbind=0.0.0.0\n"
        "cert_file=/etc/callway/cert.pem\npriv_key_file=/etc/callway/key.pem\n"
        "ca_list_file=/etc/ssl/ca.pem\nmethod=tlsv1_2\nverify_client=yes\nverify_server=off\n"
        "cipher=ECDHE-RSA-AES128-GCM-SHA256, ECDHE-RSA-AES256-GCM-SHA384\n"
        "external_signaling_address=203.0.113.5\nexternal_signaling_port=5061\n"
        "external_media_address=203.0.113.5\n"
        "local_net=192.168.0.0/16\nlocal_net=10.0.0.0/255.0.0.0,172.16.0.0/12\n"
        "tos=ef\ncos=3\nallow_reload=true\n"
    ).transports["tls"]
    assert (t.cert_file, t.priv_key_file, t.ca_list_file) == (
        "/etc/callway/cert.pem", "/etc/callway/key.pem", "/etc/ssl/ca.pem")  # fmt: skip
    assert (t.method, t.verify_client, t.verify_server, t.allow_reload) == (
        "tlsv1_2", True, False, True)  # fmt: skip
    assert t.cipher == ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384")
    assert (t.external_signaling_address, t.external_signaling_port) == ("203.0.113.5", 5061)
    assert t.local_net == (
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("172.16.0.0/12"),
    )
    assert (t.tos, t.cos) == (184, 3)


# --- codecs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("disallow=all\nallow=ulaw", ("ulaw",)),
        ("allow=ulaw,alaw", ("ulaw", "alaw")),
        ("allow=alaw\nallow=ulaw\nallow=alaw", ("alaw", "ulaw")),
        ("allow=ulaw,alaw,g722\ndisallow=alaw", ("ulaw", "g722")),
        ("allow=ulaw,alaw\nallow=!ulaw", ("alaw",)),
        ("allow=ULAW:20, G722", ("ulaw", "g722")),
        ("allow=all\ndisallow=all\nallow=opus", ("opus",)),
        ("allow=g722\ndisallow=!ulaw", ("g722", "ulaw")),
    ],
)
def test_allow_and_disallow_in_asterisk_order(lines: str, expected: tuple[str, ...]) -> None:
    assert endpoint(lines).allow == expected


def test_allow_all_adds_every_audio_codec() -> None:
    codecs = endpoint("allow=all").allow
    assert codecs[:2] == ("ulaw", "alaw")
    assert "opus" in codecs and "h264" not in codecs


def test_unknown_codec_is_an_error() -> None:
    err = error_of("[e]\ntype=endpoint\nallow=ulaw,ulwa\n")
    assert (err.filename, err.line) == ("pjsip.conf", 3)
    assert err.problem.startswith("bad value 'ulaw,ulwa' for endpoint option 'allow' in [e]")
    assert "not 'ulwa'" in err.problem


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["yes", "YES", "true", "on", "1", "y", "t"])
def test_true_words(word: str) -> None:
    assert endpoint(f"rewrite_contact={word}").rewrite_contact is True


@pytest.mark.parametrize("word", ["no", "False", "off", "0", "n", "f"])
def test_false_words(word: str) -> None:
    assert endpoint(f"direct_media={word}").direct_media is False


def test_endpoint_options() -> None:
    ep = endpoint(
        "allow=ulaw\nauth=a1, a2\noutbound_auth=out\naors=x,y\n"
        'callerid="Support" <8005>\nmedia_encryption=SDES\ndtmf_mode=info\n'
        "ice_support=yes\nrtp_timeout=30\nrtp_timeout_hold=300\ntimers=no\n"
        "timers_min_se=120\ntimers_sess_expires=600\nfrom_user=cc\nfrom_domain=example.com\n"
        "mailboxes=8005@default,8006\nlanguage=zh\nidentify_by=ip,username\n"
        "allow_unauthenticated_options=yes\n100rel=required\nset_var=A=1\nset_var=B=2\n"
        "dtls_fingerprint=sha-1",
        others="".join(f"[{n}]\ntype=auth\nusername={n}\npassword=p\n" for n in ("a1", "a2", "out"))
        + "[x]\ntype=aor\nmax_contacts=1\n[y]\ntype=aor\nmax_contacts=1\n",
    )
    assert (ep.auth, ep.outbound_auth, ep.aors) == (("a1", "a2"), ("out",), ("x", "y"))
    assert ep.callerid == '"Support" <8005>'
    assert (ep.media_encryption, ep.dtmf_mode, ep.ice_support) == ("sdes", "info", True)
    assert (ep.rtp_timeout, ep.rtp_timeout_hold, ep.timers) == (30, 300, "no")
    assert (ep.timers_min_se, ep.timers_sess_expires) == (120, 600)
    assert (ep.from_user, ep.from_domain, ep.language) == ("cc", "example.com", "zh")
    assert ep.mailboxes == ("8005@default", "8006")
    assert ep.identify_by == ("ip", "username")
    assert ep.allow_unauthenticated_options is True
    assert ep.rel100 == "required"
    assert ep.set_var == (("A", "1"), ("B", "2"))
    assert ep.dtls_fingerprint == "SHA-1"


def test_aor_auth_identify_global_system_options() -> None:
    config = parse(
        "[a]\ntype=aor\nmax_contacts=5\nremove_existing=yes\nqualify_frequency=60\n"
        "qualify_timeout=1.5\ncontact=sip:pbx1@192.0.2.1:5060, sips:pbx2@example.com\n"
        "support_path=yes\n"
        "[m]\ntype=auth\nauth_type=md5\nusername=m\nmd5_cred=0123456789abcdef0123456789ABCDEF\n"
        "realm=callway\n"
        "[e]\ntype=endpoint\nallow=ulaw\n"
        "[i]\ntype=identify\nendpoint=e\nmatch=192.0.2.0/24,sip.example.com\nmatch=198.51.100.7\n"
        "[g]\ntype=global\nuser_agent=CallCenter\nmax_forwards=20\nkeep_alive_interval=0\n"
        "endpoint_identifier_order=username,ip\n"
        "[s]\ntype=system\ntimer_t1=250\ntimer_b=16000\ncompact_headers=yes\n"
    )
    aor = config.aors["a"]
    assert (aor.max_contacts, aor.remove_existing, aor.support_path) == (5, True, True)
    assert (aor.qualify_frequency, aor.qualify_timeout) == (60, 1.5)
    assert aor.contact == ("sip:pbx1@192.0.2.1:5060", "sips:pbx2@example.com")
    assert aor.accepts_registrations
    assert (config.auths["m"].auth_type, config.auths["m"].realm) == ("md5", "callway")
    ident = config.identifies["i"]
    assert ident.match == (
        ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("198.51.100.7/32"))
    assert ident.match_hosts == ("sip.example.com",)
    assert config.global_ == Global(
        name="g", user_agent="CallCenter", max_forwards=20, keep_alive_interval=0,
        endpoint_identifier_order=("username", "ip"))  # fmt: skip
    assert config.system == System(name="s", timer_t1=250, timer_b=16000, compact_headers=True)
    assert config.warnings == ()


@pytest.mark.parametrize(
    ("body", "line", "option", "expected"),
    [
        ("direct_media=maybe", "direct_media", "maybe", "yes or no (also true/false"),
        ("rtp_timeout=-1", "rtp_timeout", "-1", "a whole number of at least 0"),
        ("rtp_timeout=ten", "rtp_timeout", "ten", "a whole number of at least 0"),
        ("timers_min_se=60", "timers_min_se", "60", "a whole number of at least 90"),
        ("media_encryption=zrtp", "media_encryption", "zrtp", "one of no, sdes, dtls"),
        ("dtmf_mode=2833", "dtmf_mode", "2833", "one of rfc4733, inband, info, auto"),
        ("identify_by=ip,mac", "identify_by", "ip,mac", "one of username, auth_username"),
        ("set_var=novalue", "set_var", "novalue", "NAME=value"),
    ],
)
def test_bad_endpoint_values(body: str, line: str, option: str, expected: str) -> None:
    err = error_of(f"[e]\ntype=endpoint\nallow=ulaw\n{body}\n")
    assert (err.filename, err.line) == ("pjsip.conf", 4)
    prefix = f"bad value '{option}' for endpoint option '{line}' in [e]: expected {expected}"
    assert err.problem.startswith(prefix)


@pytest.mark.parametrize(
    ("text", "prefix"),
    [
        ("[t]\ntype=transport\nbind=0.0.0.0:99999\n", "bad value '0.0.0.0:99999' for transport"),
        ("[t]\ntype=transport\nbind=pbx.example.com\n", "bad value 'pbx.example.com'"),
        ("[t]\ntype=transport\nbind=[::1\n", "bad value '[::1' for transport option 'bind'"),
        ("[t]\ntype=transport\nprotocol=sctp\n", "bad value 'sctp' for transport option"),
        ("[t]\ntype=transport\nlocal_net=192.168.0.0/33\n", "bad value '192.168.0.0/33'"),
        ("[t]\ntype=transport\ntos=fast\n", "bad value 'fast' for transport option 'tos'"),
        ("[a]\ntype=aor\nmax_contacts=many\n", "bad value 'many' for aor option"),
        ("[a]\ntype=aor\nqualify_timeout=soon\n", "bad value 'soon' for aor option"),
        ("[a]\ntype=aor\ncontact=192.0.2.1\n", "bad value '192.0.2.1' for aor option 'contact'"),
        ("[x]\ntype=auth\nauth_type=oauth\n", "bad value 'oauth' for auth option 'auth_type'"),
        ("[i]\ntype=identify\nmatch=not a host\n", "bad value 'not a host' for identify"),
        ("[g]\ntype=global\nmax_forwards=0\n", "bad value '0' for global option 'max_forwards'"),
    ],
)
def test_bad_values_in_other_sections(text: str, prefix: str) -> None:
    err = error_of(text)
    assert (err.filename, err.line) == ("pjsip.conf", 3)
    assert err.problem.startswith(prefix)
    assert "expected" in err.problem


# --- section typing -------------------------------------------------------------------------


def test_missing_type_is_an_error_at_the_header() -> None:
    err = error_of(ENDPOINT_8005 + "\n[orphan]\ncontext=x\n")
    assert (err.filename, err.line) == ("pjsip.conf", 5)
    assert err.problem.startswith("section [orphan] has no type= option (expected one of ")


def test_unknown_type_is_an_error_at_the_type_line() -> None:
    err = error_of("; first line\n[8005]\ncontext=x\ntype=endpont\n")
    assert (err.filename, err.line) == ("pjsip.conf", 4)
    assert err.problem.startswith("unknown section type 'endpont' (expected one of transport, ")
    assert str(err).startswith("pjsip.conf:4: unknown section type 'endpont' (expected one of")


def test_conflicting_types_are_an_error() -> None:
    err = error_of("[x]\ntype=aor\ntype=auth\n")
    assert (err.line, err.problem) == (3, "section [x] says type=aor and type=auth")


def test_type_is_case_insensitive_and_may_come_from_a_template() -> None:
    config = parse("[ep](!)\ntype=Endpoint\nallow=ulaw\ncontext=phones\n[8005](ep)\n[8006](ep)\n")
    assert list(config.endpoints) == ["8005", "8006"]
    assert config.endpoints["8006"].context == "phones"


def test_templates_are_not_objects() -> None:
    config = parse("[tpl](!)\ntype=aor\nmax_contacts=1\n")
    assert config.aors == {}


@pytest.mark.parametrize("kind", ["registration", "domain_alias", "contact", "acl"])
def test_unsupported_types_are_ignored_with_a_warning(kind: str) -> None:
    config = parse(f"[x]\ntype={kind}\nwhatever=1\n")
    assert config.warnings == (
        ConfigWarning("pjsip.conf", 2, f"section type '{kind}' of [x] is not supported yet; "
                      "ignored"),
    )  # fmt: skip


# --- duplicates and references --------------------------------------------------------------


def test_duplicate_object_is_an_error() -> None:
    err = error_of(ENDPOINT_8005 + "[8005]\ntype=endpoint\n")
    assert err.line == 4
    assert err.problem == "duplicate endpoint '8005' (first defined at pjsip.conf:1)"


def test_second_global_section_is_an_error() -> None:
    err = error_of("[global]\ntype=global\n[more]\ntype=global\n")
    assert (err.line, err.problem) == (
        3, "a second type=global section (first defined at pjsip.conf:1)")  # fmt: skip


@pytest.mark.parametrize(
    ("option", "kind"),
    [("transport=udp", "transport"), ("auth=8005", "auth"), ("outbound_auth=trunk", "auth"),
     ("aors=8005", "aor")],
)  # fmt: skip
def test_missing_reference_is_an_error_at_the_referring_line(option: str, kind: str) -> None:
    err = error_of(f"{ENDPOINT_8005}context=x\n{option}\n")
    key, name = option.split("=")
    assert (err.filename, err.line) == ("pjsip.conf", 5)
    assert err.problem == (
        f"endpoint '8005' has {key}={name}, but there is no {kind} '{name}' "
        f"(a [{name}] section with type={kind})"
    )


def test_one_missing_name_in_a_list_is_reported() -> None:
    err = error_of("[a]\ntype=aor\nmax_contacts=1\n[e]\ntype=endpoint\nallow=ulaw\naors=a,b\n")
    assert err.line == 7
    assert "no aor 'b'" in err.problem


def test_reference_to_an_object_of_another_type_is_missing() -> None:
    # [8005] exists, but only as an endpoint: auth=8005 still has nothing to point at.
    err = error_of(ENDPOINT_8005 + "auth=8005\n")
    assert "no auth '8005'" in err.problem


def test_identify_must_name_an_existing_endpoint() -> None:
    err = error_of("[i]\ntype=identify\nendpoint=ghost\nmatch=192.0.2.1\n")
    assert (err.line, err.problem.split(",")[0]) == (3, "identify 'i' has endpoint=ghost")


def test_identify_needs_endpoint_and_match() -> None:
    assert error_of("[i]\ntype=identify\nmatch=192.0.2.1\n").problem == (
        "identify 'i' has no endpoint=")
    err = error_of(ENDPOINT_8005 + "[i]\ntype=identify\nendpoint=8005\n")
    assert (err.line, err.problem) == (4, "identify 'i' needs match= or match_header=")


# --- cross-field checks ---------------------------------------------------------------------


def test_md5_auth_needs_a_valid_md5_cred() -> None:
    err = error_of("[m]\ntype=auth\nauth_type=md5\nusername=m\nmd5_cred=abc\n")
    assert (err.line, err.problem) == (
        5, "auth 'm' has auth_type=md5 but md5_cred is not 32 hex digits")  # fmt: skip


def test_session_expires_below_min_se_is_an_error() -> None:
    err = error_of(ENDPOINT_8005 + "timers_min_se=1000\ntimers_sess_expires=900\n")
    assert err.line == 5
    assert err.problem == "endpoint '8005': timers_sess_expires=900 is below timers_min_se=1000"


# --- warnings -------------------------------------------------------------------------------


def test_unknown_and_unsupported_options_warn_with_file_and_line() -> None:
    config = parse(ENDPOINT_8005 + "colour=blue\ntos_video=ef\n")
    assert config.warnings == (
        ConfigWarning("pjsip.conf", 4, "unknown endpoint option 'colour' in [8005]; ignored"),
        ConfigWarning("pjsip.conf", 5,
                      "endpoint option 'tos_video' in [8005] is not supported yet; ignored"),
    )  # fmt: skip
    assert str(config.warnings[0]) == (
        "pjsip.conf:4: unknown endpoint option 'colour' in [8005]; ignored")


def test_semantic_warnings() -> None:
    config = parse(
        "[e]\ntype=endpoint\n"
        "[a]\ntype=aor\nminimum_expiration=4000\n"
        "[x]\ntype=auth\n"
    )
    messages = [(w.line, w.message) for w in config.warnings]
    assert messages == [
        (1, "endpoint 'e' allows no codecs, so its calls will fail"),
        (3, "aor 'a': default_expiration=3600 is outside 4000..7200 and will be clamped"),
        (3, "aor 'a' has max_contacts=0 and no contact=, so every REGISTER to it is refused "
            "(set max_contacts=1)"),
        (6, "auth 'x' has no username="),
        (6, "auth 'x' has an empty password"),
    ]  # fmt: skip


# --- includes and files ---------------------------------------------------------------------


def test_includes_through_an_in_memory_loader() -> None:
    files = {
        "transports.conf": "[transport-udp]\ntype=transport\nbind=0.0.0.0:5061\n",
        "phones.conf": SEED_PJSIP_CONF[SEED_PJSIP_CONF.index("[8005]") :],
    }

    def load(name: str) -> tuple[str, str]:
        return name, files[name]

    config = parse("#include transports.conf\n#include phones.conf\n", load)
    assert list(config.endpoints) == ["8005"]
    assert config.transports["transport-udp"].bind_port == 5061


def test_error_in_an_included_file_names_that_file() -> None:
    files = {"bad.conf": "[e]\ntype=endpoint\ndirect_media=perhaps\n"}
    err = error_of("#include bad.conf\n", lambda name: (name, files[name]))
    assert (err.filename, err.line) == ("bad.conf", 3)


def test_load_pjsip_reads_files_and_includes(tmp_path: Path) -> None:
    cut = DEMO_PJSIP_CONF.index("[8005]")
    (tmp_path / "pjsip.conf").write_text(DEMO_PJSIP_CONF[:cut] + "#include pjsip_phones.conf\n")
    (tmp_path / "pjsip_phones.conf").write_text(DEMO_PJSIP_CONF[cut:])
    config = load_pjsip(tmp_path / "pjsip.conf")
    assert list(config.endpoints) == ["8005", "8006"]
    assert list(config.transports) == ["transport-udp"]


def test_load_pjsip_reports_a_missing_include(tmp_path: Path) -> None:
    path = tmp_path / "pjsip.conf"
    path.write_text("#include nowhere.conf\n")
    with pytest.raises(ConfigError) as caught:
        load_pjsip(path)
    assert (caught.value.filename, caught.value.line) == (str(path), 1)


# --- table integrity ------------------------------------------------------------------------


def test_every_option_sets_a_model_field() -> None:
    classes = {"transport": model.Transport, "endpoint": model.Endpoint, "auth": model.Auth,
               "aor": model.Aor, "identify": model.Identify, "global": model.Global,
               "system": model.System}  # fmt: skip
    for kind, table in TYPE_OPTIONS.items():
        fields = {f.name for f in dataclasses.fields(classes[kind])} | set(table.pseudo)
        for key, spec in table.options.items():
            assert spec.field in fields, (kind, key)
        assert not table.ignored & set(table.options), kind
