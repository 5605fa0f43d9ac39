"""The Asterisk-flavoured INI reader: syntax, templates, includes and every error path."""

from __future__ import annotations

import pytest

from callway.config.errors import ConfigError
from callway.config.ini import Loader, Option, Section, parse_ini, resolve_include, strip_comments


def memory_loader(files: dict[str, str]) -> Loader:
    """A loader over an in-memory file system; unknown names raise FileNotFoundError."""

    def load(name: str) -> tuple[str, str]:
        if name not in files:
            raise FileNotFoundError(name)
        return name, files[name]

    return load


def pairs(section: Section) -> list[tuple[str, str]]:
    return [(opt.key, opt.value) for opt in section.options]


def error_of(text: str, filename: str = "test.conf", loader: Loader | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_ini(text, filename, loader)
    return caught.value


# --- basic syntax ---------------------------------------------------------------------------


def test_sections_options_and_positions() -> None:
    text = "; header\n[one]\nkey=value\n\n[two]\n  spaced  =  padded value  \n"
    one, two = parse_ini(text, "x.conf")
    assert (one.name, one.filename, one.line) == ("one", "x.conf", 2)
    assert one.options == (Option("key", "value", "x.conf", 3, "="),)
    assert (two.name, two.line) == ("two", 5)
    assert pairs(two) == [("spaced", "padded value")]


def test_object_operator_is_kept() -> None:
    (ctx,) = parse_ini("[ctx]\nexten => 100,1,NoOp()\nfoo = bar\n")
    assert [(o.key, o.op, o.value) for o in ctx.options] == [
        ("exten", "=>", "100,1,NoOp()"),
        ("foo", "=", "bar"),
    ]


def test_value_may_contain_equals_signs() -> None:
    (sec,) = parse_ini("[s]\nset_var=A=b=c\n")
    assert pairs(sec) == [("set_var", "A=b=c")]


def test_repeated_keys_are_kept_in_order() -> None:
    (sec,) = parse_ini("[e]\ndisallow=all\nallow=ulaw\nallow=alaw\n")
    assert sec.get_all("allow") == ("ulaw", "alaw")
    assert sec.get("ALLOW") == "alaw"
    assert sec.get("missing") is None


def test_repeated_section_names_are_separate_sections() -> None:
    text = "[8005]\ntype=endpoint\n[8005]\ntype=auth\n[8005]\ntype=aor\n"
    sections = parse_ini(text)
    assert [(s.name, s.get("type"), s.line) for s in sections] == [
        ("8005", "endpoint", 1),
        ("8005", "auth", 3),
        ("8005", "aor", 5),
    ]


def test_empty_value_and_crlf_and_bom() -> None:
    (sec,) = parse_ini("\ufeff[s]\r\nempty=\r\nk=v\r\n")
    assert pairs(sec) == [("empty", ""), ("k", "v")]


# --- comments -------------------------------------------------------------------------------


def test_trailing_comment_and_escaped_semicolon() -> None:
    (sec,) = parse_ini("[s] ; the section\nk=v ; note\nq=a\\;b ; real comment\n")
    assert pairs(sec) == [("k", "v"), ("q", "a;b")]


def test_block_comments_span_lines_and_nest() -> None:
    text = "[s]\na=1 ;-- start\nb=2\n;-- nested --;\nc=3 --; d=4\ne=5\n"
    (sec,) = parse_ini(text)
    assert pairs(sec) == [("a", "1"), ("d", "4"), ("e", "5")]


def test_strip_comments_tracks_depth() -> None:
    assert strip_comments("a ;-- b", 0) == ("a ", 1)
    assert strip_comments("x --; y", 1) == (" y", 0)
    assert strip_comments("plain \\; text ; gone", 0) == ("plain ; text ", 0)


def test_unclosed_block_comment_is_an_error_at_its_start() -> None:
    err = error_of("[s]\na=1\n;-- never closed\nb=2\n")
    assert (err.filename, err.line) == ("test.conf", 3)
    assert "never closed" in err.problem


# --- templates ------------------------------------------------------------------------------


def test_template_inheritance_copies_options_first() -> None:
    text = (
        "[base](!)\ntype=endpoint\nallow=ulaw\n"
        "[phone](!,base)\ncontext=phones\n"
        "[8005](phone)\nallow=alaw\n"
    )
    base, phone, leaf = parse_ini(text, "t.conf")
    assert base.is_template and phone.is_template and not leaf.is_template
    assert phone.templates == ("base",)
    assert leaf.templates == ("phone",)
    assert pairs(leaf) == [
        ("type", "endpoint"),
        ("allow", "ulaw"),
        ("context", "phones"),
        ("allow", "alaw"),
    ]
    # Inherited options keep the place they were written.
    assert (leaf.options[0].filename, leaf.options[0].line) == ("t.conf", 2)


def test_several_templates_apply_in_order() -> None:
    text = "[a](!)\nx=1\n[b](!)\nx=2\ny=3\n[c](a,b)\nz=4\n"
    *_, c = parse_ini(text)
    assert pairs(c) == [("x", "1"), ("x", "2"), ("y", "3"), ("z", "4")]
    assert c.get("x") == "2"


def test_template_changes_after_use_are_not_seen() -> None:
    text = "[t](!)\nx=1\n[u](t)\n[t](+)\nx=2\n"
    _, u = parse_ini(text)
    assert pairs(u) == [("x", "1")]


def test_unknown_template_is_an_error() -> None:
    err = error_of("[s]\na=1\n\n[x](nope)\n")
    assert (err.filename, err.line) == ("test.conf", 4)
    assert err.problem == "section 'x' inherits from unknown section 'nope'"
    assert str(err) == "test.conf:4: section 'x' inherits from unknown section 'nope'"


# --- appending with (+) ---------------------------------------------------------------------


def test_append_adds_to_the_first_section_of_that_name() -> None:
    text = "[a]\nx=1\n[b]\ny=2\n[a](+)\nz=3\n"
    a, b = parse_ini(text)
    assert pairs(a) == [("x", "1"), ("z", "3")]
    assert pairs(b) == [("y", "2")]


def test_append_filter_picks_the_matching_section() -> None:
    text = "[8005]\ntype=endpoint\n[8005]\ntype=aor\n[8005](+type=aor)\nmax_contacts=2\n"
    endpoint, aor = parse_ini(text)
    assert endpoint.get("max_contacts") is None
    assert aor.get("max_contacts") == "2"


def test_append_to_missing_section_is_an_error() -> None:
    err = error_of("[a]\nx=1\n[b](+)\n")
    assert err.line == 3
    assert err.problem == "'[b](+)' appends to a section that does not exist yet"


def test_append_filter_without_match_is_an_error() -> None:
    err = error_of("[a]\ntype=auth\n[a](+type=aor)\n")
    assert err.line == 3
    assert "matching the filter" in err.problem


def test_bad_append_filter_is_an_error() -> None:
    err = error_of("[a]\nx=1\n[a](+x)\n")
    assert (err.line, err.problem) == (3, "section 'a': bad append filter 'x' (expected key=value)")


def test_template_and_append_cannot_combine() -> None:
    err = error_of("[a]\n[a](!,+)\n")
    assert (err.line, err.problem) == (2, "section 'a': '!' and '+' cannot be combined")


# --- syntax errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("[s]\n[broken\n", 2, "section header is missing its closing ']'"),
        ("[s]\n[ ]\n", 2, "section header has an empty name"),
        ("[s]\n[t] junk\n", 2, "unexpected text after section header: 'junk'"),
        ("[s]\n[t](!\n", 2, "section 't': '(' is missing its closing ')'"),
        ("[s]\n[t](!,)\n", 2, "section 't': empty entry in '(!,)'"),
        ("[s]\njust words\n", 2, "expected 'key = value', '[section]' or a '#' directive, "
         "got 'just words'"),
        ("[s]\n = value\n", 2, "option has no name before '='"),
        ("; c\nkey=value\n", 2, "option 'key' appears before any [section]"),
        ("[s]\n#exec /bin/date\n", 2, "#exec is not supported (it would run a program)"),
        ("[s]\n#define X\n", 2, "unknown directive '#define'"),
        ("[s]\n#include\n", 2, "#include needs a file name"),
    ],
)  # fmt: skip
def test_syntax_errors_name_file_and_line(text: str, line: int, problem: str) -> None:
    err = error_of(text, "bad.conf")
    assert (err.filename, err.line, err.problem) == ("bad.conf", line, problem)
    assert str(err) == f"bad.conf:{line}: {problem}"


def test_error_str_with_column() -> None:
    err = ConfigError("pjsip.conf", 12, "boom", column=5)
    assert str(err) == "pjsip.conf:12:5: boom"
    assert (err.filename, err.line, err.column, err.problem) == ("pjsip.conf", 12, 5, "boom")


# --- includes -------------------------------------------------------------------------------


def test_include_inserts_text_in_place() -> None:
    files = {
        "/etc/pbx/main.conf": '[a]\nx=1\n#include "extra.conf"\n[c]\nz=3\n',
        "/etc/pbx/extra.conf": "y=2\n[b]\nw=4\n",
    }
    a, b, c = parse_ini(files["/etc/pbx/main.conf"], "/etc/pbx/main.conf", memory_loader(files))
    # An included file continues the section that was open, like a C preprocessor.
    assert pairs(a) == [("x", "1"), ("y", "2")]
    assert a.options[1].filename == "/etc/pbx/extra.conf"
    assert a.options[1].line == 1
    assert (b.name, b.filename, b.line, pairs(b)) == ("b", "/etc/pbx/extra.conf", 2, [("w", "4")])
    assert pairs(c) == [("z", "3")]


def test_include_is_relative_to_the_including_file() -> None:
    files = {
        "conf/main.conf": "#include sub/one.conf\n",
        "conf/sub/one.conf": "#include <two.conf>\n",
        "conf/sub/two.conf": "[deep]\nk=v\n",
    }
    (deep,) = parse_ini(files["conf/main.conf"], "conf/main.conf", memory_loader(files))
    assert (deep.filename, pairs(deep)) == ("conf/sub/two.conf", [("k", "v")])


def test_resolve_include() -> None:
    assert resolve_include("b.conf", "pjsip.conf") == "b.conf"
    assert resolve_include("b.conf", "/etc/asterisk/pjsip.conf") == "/etc/asterisk/b.conf"
    assert resolve_include("/abs/b.conf", "/etc/asterisk/pjsip.conf") == "/abs/b.conf"
    assert resolve_include("./x/../b.conf", "dir/a.conf") == "dir/b.conf"


def test_missing_include_is_an_error_in_the_including_file() -> None:
    err = error_of("[s]\n#include missing.conf\n", "main.conf", memory_loader({}))
    assert (err.filename, err.line) == ("main.conf", 2)
    assert err.problem == "cannot #include 'missing.conf': file not found"


def test_tryinclude_skips_a_missing_file() -> None:
    (sec,) = parse_ini("[s]\n#tryinclude missing.conf\nk=v\n", "m.conf", memory_loader({}))
    assert pairs(sec) == [("k", "v")]


def test_include_without_loader_is_an_error() -> None:
    err = error_of("[s]\n#include other.conf\n")
    assert err.line == 2
    assert err.problem == "cannot #include 'other.conf': no file loader given"


def test_unreadable_include_reports_the_os_error() -> None:
    def load(name: str) -> tuple[str, str]:
        raise PermissionError("permission denied")

    err = error_of("[s]\n#include locked.conf\n", "m.conf", load)
    assert (err.line, err.problem) == (2, "cannot #include 'locked.conf': permission denied")


def test_wildcard_include_is_refused() -> None:
    err = error_of("#include pjsip_*.conf\n", "m.conf", memory_loader({}))
    assert (err.line, err.problem) == (1, "wildcard #include 'pjsip_*.conf' is not supported")


def test_include_loop_is_an_error() -> None:
    files = {"a.conf": "[s]\n#include b.conf\n", "b.conf": "k=v\n#include a.conf\n"}
    err = error_of(files["a.conf"], "a.conf", memory_loader(files))
    assert (err.filename, err.line) == ("b.conf", 2)
    assert err.problem == "#include loop: a.conf -> b.conf -> a.conf"


def test_self_include_is_a_loop() -> None:
    files = {"a.conf": "#include a.conf\n"}
    err = error_of(files["a.conf"], "a.conf", memory_loader(files))
    assert (err.line, err.problem) == (1, "#include loop: a.conf -> a.conf")


def test_syntax_error_inside_include_names_the_included_file() -> None:
    files = {"inc.conf": "[ok]\n\n[oops\n"}
    err = error_of("#include inc.conf\n", "main.conf", memory_loader(files))
    assert (err.filename, err.line) == ("inc.conf", 3)


def test_include_depth_is_limited() -> None:
    def load(name: str) -> tuple[str, str]:
        depth = int(name.removeprefix("f").removesuffix(".conf"))
        return name, f"#include f{depth + 1}.conf\n"

    err = error_of("#include f1.conf\n", "f0.conf", load)
    assert err.filename == "f16.conf"
    assert (err.line, err.problem) == (1, "#include nested more than 16 deep")
