"""The bench starts no broker of its own where FENGQIAO_KAFKA_BOOTSTRAP finds one answering."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from bench import common


def test_no_broker_is_started_beside_the_one_the_bootstrap_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(common.subprocess, "run", lambda *a, **k: started.append(a))
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setattr(common, "BOOTSTRAP", f"127.0.0.1:{port}")
        common.ensure_broker()
    assert started == []


def test_the_broker_is_started_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    class Done:
        returncode = 1
        stderr = ""

    def run(cmd: list[str], **_: Any) -> Done:
        calls.append(cmd[2:])
        if cmd[2] == "start":
            Done.returncode = 0
        return Done()

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    monkeypatch.setattr(common, "BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setattr(common.subprocess, "run", run)
    common.ensure_broker()
    assert calls == [["status"], ["start"]]
