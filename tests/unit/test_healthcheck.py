from __future__ import annotations

import pytest

from lockstep import healthcheck


def test_healthcheck_invalid_setting(monkeypatch: pytest.MonkeyPatch, capsys):
    # The page would show the error and stop, which the script health check reports as ok.
    monkeypatch.setenv("LOCKSTEP_TOP_K", "0")
    monkeypatch.setenv("LOCKSTEP_MAX_IMAGE_PIXELS", "abc")
    assert healthcheck.main() == 1
    output = capsys.readouterr().out
    assert "unhealthy: invalid setting" in output
    assert "LOCKSTEP_TOP_K='0' is invalid" in output
    assert "LOCKSTEP_MAX_IMAGE_PIXELS='abc' is invalid" in output


def test_healthcheck_unreachable_app(monkeypatch: pytest.MonkeyPatch, capsys):
    # Port 9 (discard) has no listener in the test container.
    monkeypatch.setenv("STREAMLIT_SERVER_PORT", "9")
    assert healthcheck.main() == 1
    assert "unreachable" in capsys.readouterr().out
