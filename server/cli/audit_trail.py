"""Where the CLI's admin actions are audited, made sure of before a command changes anything.

A command that changes state (every parser declares ``changes_state``) runs only once its
audit file is open for appending: an admin action is never unaudited. A write that fails
afterwards (a full disk) makes the command end non-zero, saying the change was made.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skywarden.server.auth.credentials import ensure_data_dir
from skywarden.server.cli.keys import CliError, store_path
from skywarden.server.observability.log_sink import BackgroundSink
from skywarden.server.settings import Settings

CLI_AUDIT_FILE = "audit.log"
SETTING_HINT = "set audit_log_file (--audit-log-file or SKYWARDEN_AUDIT_LOG_FILE) to a file this user can append to"


@dataclass(frozen=True)
class AuditFile:
    path: str
    setting: str  # which setting chose it, for messages


def cli_audit_file(settings: Settings) -> AuditFile:
    """``audit_log_file``, else ``log_file``, else ``<data_dir>/audit.log`` (never the terminal,
    where the command's own output goes)."""
    if settings.audit_log_file:
        return AuditFile(settings.audit_log_file, "audit_log_file")
    if settings.log_file:
        return AuditFile(settings.log_file, "log_file")
    return AuditFile(str(Path(settings.data_dir) / CLI_AUDIT_FILE), "data_dir")


def require_audit_file(settings: Settings) -> AuditFile:
    """The audit file, open for appending, or a ``CliError`` before anything changed.

    The data dir is created for it only when the key store lives on this machine (SQLite), as
    the store and a generated secret would create it anyway; beside a shared store (PostgreSQL)
    a folder that does not exist is refused, so the audit never lands somewhere nobody reads."""
    audit = cli_audit_file(settings)
    if audit.setting == "data_dir" and store_path(settings) is not None:
        ensure_data_dir(settings.data_dir)
    try:
        with open(audit.path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise CliError(
            f"cannot append to the audit file {audit.path} (from {audit.setting}: {exc.strerror or exc}); "
            f"an admin action is never unaudited, so nothing was changed: {SETTING_HINT}"
        ) from None
    return audit


def audit_write_failed(audit: AuditFile, sinks: list[BackgroundSink]) -> str | None:
    """After the sinks are closed: a line saying the audit event was lost, or None."""
    if any(sink.path == audit.path and sink.failures for sink in sinks):
        return f"the change was made, but its audit event could not be written to {audit.path}; record it by hand"
    return None
