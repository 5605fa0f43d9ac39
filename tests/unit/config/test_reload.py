"""A broken file on reload is reported with file and line; the old config stays."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from callway.app.pbx import PbxApp, PbxSettings
from callway.config.defaults import DEMO_EXTENSIONS_CONF, DEMO_PJSIP_CONF


def test_reload_keeps_running_config_on_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "pjsip.conf").write_text(DEMO_PJSIP_CONF)
    (tmp_path / "extensions.conf").write_text(DEMO_EXTENSIONS_CONF)
    app = PbxApp(PbxSettings(tmp_path, tmp_path))
    try:
        assert set(app.config.endpoints) == {"8005", "8006"}
        (tmp_path / "pjsip.conf").write_text(DEMO_PJSIP_CONF + "\n[9000]\ntype=endpont\n")
        with caplog.at_level(logging.ERROR):
            assert app.reload() is False
        assert "pjsip.conf:" in caplog.text and "endpont" in caplog.text
        assert set(app.config.endpoints) == {"8005", "8006"}
        assert app.registrar.config is app.config
        good = DEMO_PJSIP_CONF.replace("8006", "8007")
        (tmp_path / "pjsip.conf").write_text(good)
        assert app.reload() is True
        assert set(app.config.endpoints) == {"8005", "8007"}
        assert app.registrar.config is app.config
    finally:
        app.store.close()


def test_bad_dialplan_line_is_config_error(tmp_path: Path) -> None:
    from callway.config.errors import ConfigError

    (tmp_path / "pjsip.conf").write_text(DEMO_PJSIP_CONF)
    (tmp_path / "extensions.conf").write_text(
        "[from-external]\nexten => _80XX,1,NoOp()\n same => n,Dail(PJSIP/${EXTEN})\n"
    )
    with pytest.raises(ConfigError) as info:
        PbxApp(PbxSettings(tmp_path, tmp_path))
    assert info.value.filename.endswith("extensions.conf")
    assert info.value.line == 3
