"""A server never runs without its log and audit trail: files it cannot append to stop ``serve``
(and ``serve --workers``) before it binds, with one line; a file that fails later makes readiness
503 and shows in the metrics, and what could not be written is kept and written once it can."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from skywarden.server.observability import logging_setup
from skywarden.server.observability.log_sink import BackgroundSink, SinkOpenError
from skywarden.server.observability.logging_setup import file_sink
from tests.support.cli_runs import run_skywarden
from tests.support.server_process import start_server

UNWRITABLE_FILE = "/sys/kernel/notes"  # refused even to root, which every permission bit lets through


def _unwritable_file(tmp_path: Path) -> str:
    if os.geteuid() != 0:
        path = tmp_path / "read-only.log"
        path.write_text("")
        path.chmod(0o444)
        return str(path)
    if not os.path.exists(UNWRITABLE_FILE):
        pytest.skip(f"running as root and {UNWRITABLE_FILE} is missing: no file root cannot append to")
    return UNWRITABLE_FILE


def _under_a_file(tmp_path: Path) -> str:
    (tmp_path / "plain").write_text("")
    return str(tmp_path / "plain" / "x.log")


BAD_DESTINATIONS = {
    "missing folder": lambda tmp: str(tmp / "no" / "such" / "folder" / "audit.log"),
    "folder instead of a file": lambda tmp: str(tmp),
    "file under a file": _under_a_file,
    "unwritable file": _unwritable_file,
}


@pytest.mark.parametrize("kind", list(BAD_DESTINATIONS))
@pytest.mark.parametrize("setting", ["log_file", "audit_log_file"])
def test_an_unusable_file_is_refused_with_one_line(tmp_path, kind, setting):
    path = BAD_DESTINATIONS[kind](tmp_path)
    with pytest.raises(SinkOpenError) as info:
        file_sink(path, setting, open_now=True)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"cannot append to {path} ({setting}: ")
    assert f"SKYWARDEN_{setting.upper()}" in message
    if kind == "missing folder":
        assert f"install -d -m 0750 {Path(path).parent}" in message


def test_the_sink_opens_nothing_until_asked(tmp_path):
    """The CLI's read-only commands keep writing lazily (their audit file is checked where it matters)."""
    sink = BackgroundSink(path=str(tmp_path / "missing" / "x.log"))
    sink.close()


def test_a_failed_file_keeps_its_lines_and_writes_them_once_it_can(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    path = folder / "audit.log"
    sink = BackgroundSink(path=str(path), open_now=True)
    path.unlink()
    folder.rmdir()  # the file and its folder removed: the reopen fails
    sink.write("one\n")
    sink.drain()
    assert sink.failing and sink.failures >= 1 and sink.lost == 0
    folder.mkdir()
    sink.write("two\n")
    sink.drain()
    assert not sink.failing
    sink.close()
    assert path.read_text() == "one\ntwo\n" and sink.lost == 0


def test_a_full_device_is_failing_and_its_backlog_counted_as_lost_at_close():
    sink = BackgroundSink(path="/dev/full", open_now=True)
    for n in range(3):
        sink.write(f"line {n}\n")
    sink.drain()
    assert sink.failing
    sink.close()
    assert sink.lost == 3


async def test_readiness_and_metrics_name_a_failing_audit_log(client, monkeypatch):
    full = BackgroundSink(path="/dev/full", open_now=True)
    monkeypatch.setitem(logging_setup._roles, "audit_log", full)
    try:
        ready = await client.get("/api/health/ready")
        assert ready.status == 200 and (await ready.json())["checks"]["audit_log"] == "ok"
        full.write("an audit event\n")
        full.drain()
        ready = await client.get("/api/health/ready")
        body = await ready.json()
        assert ready.status == 503 and ready.content_type == "application/problem+json"
        assert body["checks"]["audit_log"] == "unwritable" and body["checks"]["log"] == "ok"
        assert "audit_log unwritable" in body["detail"] and "/dev/full" not in body["detail"]
        metrics = await (await client.admin.get("/metrics")).text()
        assert 'skywarden_log_sink_failing{sink="audit_log"} 1.0' in metrics
        assert 'skywarden_log_sink_failing{sink="log"} 0.0' in metrics
    finally:
        full.close()


def _clean(tmp_path: Path, **settings: str) -> list[str]:
    args = ["serve", "--data-dir", str(tmp_path / "data")]
    for name, value in settings.items():
        args += ["--" + name.replace("_", "-"), value]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize("kind", list(BAD_DESTINATIONS))
@pytest.mark.parametrize("setting", ["log_file", "audit_log_file"])
def test_serve_refuses_a_log_it_cannot_write_before_it_binds(tmp_path, kind, setting, workers):
    path = BAD_DESTINATIONS[kind](tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = run_skywarden(*_clean(tmp_path, workers=workers, port=str(port), **{setting: path}))
    line = run.one_line_refusal()
    assert run.code == 1 and f"cannot append to {path} ({setting}: " in line
    assert not run.out  # nothing logged, no "stopping" for a server that never started
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # never bound (and nothing left holding it)


@pytest.mark.slow
async def test_a_server_whose_audit_log_fails_at_run_time_is_not_ready(tmp_path):
    server = await start_server(
        {"SKYWARDEN_DATA_DIR": str(tmp_path), "SKYWARDEN_AUDIT_LOG_FILE": "/dev/full", "SKYWARDEN_ADMIN_TOKEN": ""}
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url + "/api/health") as resp:
                assert resp.status == 200  # its audit event cannot be written
            await server.wait_for_output("log sink /dev/full failed")
            async with http.get(server.url + "/api/health/ready") as resp:
                body = await resp.json()
                assert resp.status == 503 and body["checks"]["audit_log"] == "unwritable", body
    finally:
        await server.stop()


@pytest.mark.slow
def test_console_lines_show_control_characters_as_escapes_never_raw():
    # an upstream's stderr line (or any value) holding ESC [2K would erase the line on a terminal
    code = (
        "from skywarden.server.observability.logging_setup import configure_logging, close_sinks\n"
        "import structlog\n"
        "configure_logging(fmt='console')\n"
        "line = '\\x1b[2K\\x1b[1Ahidden\\x07\\x9b\\x7f'\n"
        "structlog.get_logger('t').warning('upstream said', line=line)\n"
        "close_sinks()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "upstream said" in out and "hidden" in out
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out), repr(out)
    assert "\\x1b[2K\\x1b[1Ahidden\\x07\\x9b\\x7f" in out
