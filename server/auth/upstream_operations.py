"""What an admin can do to upstreams kept in the key store (docs/gateway.md), shared by the admin
API, the console and the ``skywarden upstreams`` CLI.

An upstream declared in settings stays there: it is listed but cannot be changed here. One added
here is the same table as a settings one, validated by the same parser (``parse_upstream``), with
rules of its own, because an admin is not the operator of the machine:

- ``env`` and ``headers`` values are text only (no ``{file = ...}`` or ``{env = ...}``: that would
  let an admin send any file or variable of the server to a URL of their choice); they are sealed
  at rest (``auth.sealing``) bound to where the upstream runs (``WHERE_IT_RUNS``: a credential is
  never sent elsewhere without being given again), redacted from the log while the upstream is
  kept, and never shown again;
- a stdio upstream runs a command on the server: only a command listed in
  ``upstream_admin_commands`` (``*``: any), with only the environment variables
  ``upstream_admin_env`` names, and never one that steers a loader, a shell or an interpreter
  (``NEVER_FROM_AN_ADMIN``);
- a remote one reaches public addresses, or the operator's ``upstream_allowed_networks``: never
  ``allow_private``;
- at most ``MAX_STORED_UPSTREAMS`` are kept (checked in the insert's own transaction).

Each instance checks these rules again when it reads the store, so a row written some other way
is not run. Every instance reads the stored upstreams when it starts, at once when told by the
broadcast (``changed``), and every ``STORE_POLL_SECONDS`` in any case (the CLI, and sibling
workers without Redis).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from skywarden.server.auth.key_operations import Actor
from skywarden.server.auth.records import StoredUpstream, TooManyUpstreams, UpstreamExists, utcnow
from skywarden.server.auth.sealing import Unsealable, seal, sealing_key, unseal
from skywarden.server.auth.store import KeyStore
from skywarden.server.errors import UPSTREAM_CONFLICT, UPSTREAM_NOT_FOUND, ApiError, ValidationFailed
from skywarden.server.observability.audit import audit_operator_action
from skywarden.server.observability.redaction import register_owned_secrets
from skywarden.server.upstreams import MAX_NAME, StoredUpstreams, UpstreamConfig, credentials_owner, parse_upstream

MAX_STORED_UPSTREAMS = 100
SEALED = "sealed"  # a stored env or headers value: {"sealed": "v1...."}
SECRET_MAPS = ("env", "headers")
WHERE_IT_RUNS = ("transport", "url", "allow_private", "command", "args", "cwd")  # sealed values are bound to these
# Variables that make a loader, a shell or an interpreter run other code: never from an admin,
# whatever upstream_admin_env allows (the orphan guard is Python, started with -I).
NEVER_FROM_AN_ADMIN = (
    "LD_*", "DYLD_*", "PYTHON*", "NODE_*", "NPM_CONFIG_*", "BASH_ENV", "ENV", "BASH_FUNC_*", "SHELLOPTS",
    "BASHOPTS", "PS4", "IFS", "PATH", "HOME", "TMPDIR", "PERL5*", "PERLLIB", "RUBY*", "GEM_*", "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH", "GCONV_PATH", "LOCPATH", "MALLOC_*", "GLIBC_TUNABLES",
    "BROWSER", "EDITOR", "VISUAL", "PAGER", "GIT_*", "UV_*", "PIP_*", "VIRTUAL_ENV", "CONDA_*", "SSL_CERT_*",
    "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
)  # fmt: skip


@dataclass(frozen=True)
class StoredEntry:
    """A stored upstream as this server reads it: its config, or why it cannot be used."""

    record: StoredUpstream
    config: UpstreamConfig | None
    problem: str = ""


@dataclass
class UpstreamOperations:
    store: KeyStore
    secret: bytes  # the server secret: the sealing key is derived from it
    declared: tuple[UpstreamConfig, ...]  # from settings: listed, never changed here
    separator: str
    admin_commands: tuple[str, ...]
    admin_env: tuple[str, ...] = ()  # patterns of the env names an admin may give a stdio upstream
    changed: Callable[[], Awaitable[None]] | None = None  # tell every instance to read the store again
    _sealing_key: bytes = field(default=b"", init=False, repr=False)

    @property
    def _key(self) -> bytes:
        if not self._sealing_key and self.secret:
            self._sealing_key = sealing_key(self.secret)
        return self._sealing_key

    async def entries(self) -> list[StoredEntry]:
        declared = {c.name for c in self.declared}
        found = []
        for record in await self.store.list_upstreams():
            if record.name in declared:
                found.append(StoredEntry(record, None, "an upstream of this name is declared in settings"))
                continue
            try:
                table = self._opened(record.name, record.spec)
                config = parse_upstream(record.name, table)
            except Unsealable:
                problem = "its credentials cannot be opened (another server secret, or changed); give them again"
                found.append(StoredEntry(record, None, problem))
                continue
            except ValueError as exc:
                found.append(StoredEntry(record, None, str(exc)))
                continue
            refusal = self._refusal(config)  # the rules hold for what is in the store, however it got there
            if refusal is not None:
                found.append(StoredEntry(record, None, refusal[1]))
                continue
            found.append(StoredEntry(record, config))
        return found

    async def load(self) -> StoredUpstreams:
        """The stored upstreams this server can run, and why each other one cannot be run."""
        usable, unusable = [], {}
        for entry in await self.entries():
            if entry.config is None:
                unusable[entry.record.name] = entry.problem
            else:
                usable.append(entry.config)
        return StoredUpstreams(tuple(usable), unusable)

    async def get(self, name: str) -> StoredEntry:
        for entry in await self.entries():
            if entry.record.name == name:
                return entry
        raise self._not_found(name)

    async def add(self, body: Any, actor: Actor) -> UpstreamConfig:
        if not isinstance(body, dict):
            raise ValidationFailed({"_schema": ["The body must be a JSON object."]})
        table = dict(body)
        name = table.pop("name", None)
        if not isinstance(name, str):
            raise ValidationFailed({"name": ["Missing or not text: the upstream's name."]})
        if any(c.name == name for c in self.declared):
            raise ApiError(UPSTREAM_CONFLICT, f"The upstream {name!r} is declared in settings; change it there.")
        config = self._checked(name, table)
        now = utcnow()
        record = StoredUpstream(name, self._sealed(name, table), now, now, actor.display_name)
        try:
            await self.store.add_upstream(record, MAX_STORED_UPSTREAMS)
        except UpstreamExists:
            raise ApiError(UPSTREAM_CONFLICT, f"There is already an upstream named {name!r}.") from None
        except TooManyUpstreams:
            raise ApiError(
                UPSTREAM_CONFLICT, f"At most {MAX_STORED_UPSTREAMS} upstreams are kept; remove one first."
            ) from None
        self._audit(actor, "upstream.add", name, None, config)
        await self._tell()
        return config

    async def update(self, name: str, body: Any, actor: Actor) -> UpstreamConfig:
        """Options in ``body`` replace the stored ones (``env`` and ``headers`` whole); ``null``
        puts an option back to its default."""
        if not isinstance(body, dict) or not body:
            raise ValidationFailed({"_schema": ["The body must be a JSON object with the options to change."]})
        if "name" in body:
            raise ValidationFailed({"name": ["An upstream cannot be renamed; add it anew and remove this one."]})
        self._refuse_declared(name)
        entry = await self.get(name)
        missing = [o for o in SECRET_MAPS if entry.record.spec.get(o) and o not in body]
        moved = any(o in body and body[o] != entry.record.spec.get(o) for o in WHERE_IT_RUNS)
        if missing and moved:  # a credential is never sent somewhere else without being given again
            raise ApiError(
                UPSTREAM_CONFLICT,
                f"Changing where the upstream {name!r} runs needs its credentials again: "
                f"give {' and '.join(missing)} in this change.",
            )
        try:
            table = self._opened(name, entry.record.spec)
        except Unsealable:  # the credentials must be given again; the rest is kept
            if missing:
                raise ApiError(
                    UPSTREAM_CONFLICT,
                    f"The credentials of the upstream {name!r} cannot be opened (another server secret, or "
                    f"changed): give {' and '.join(missing)} again in this change.",
                ) from None
            table = {k: v for k, v in entry.record.spec.items() if k not in SECRET_MAPS}
        for option, value in body.items():
            if value is None:
                table.pop(option, None)
            else:
                table[option] = value
        config = self._checked(name, table)
        if not await self.store.replace_upstream(name, self._sealed(name, table), utcnow()):
            raise self._not_found(name)
        self._audit(actor, "upstream.update", name, entry.config, config)
        await self._tell()
        return config

    async def remove(self, name: str, actor: Actor) -> None:
        self._refuse_declared(name)
        entry = await self.get(name)
        if not await self.store.remove_upstream(name):
            raise self._not_found(name)
        register_owned_secrets(credentials_owner(name), ())
        self._audit(actor, "upstream.remove", name, entry.config, None)
        await self._tell()

    def _checked(self, name: str, table: dict[str, Any]) -> UpstreamConfig:
        if self.separator in name:
            raise ValidationFailed(
                {"name": [f"It holds the separator {self.separator!r} (gateway_separator) of tool names."]}
            )
        for option in SECRET_MAPS:
            values = table.get(option, {})
            if isinstance(values, dict) and any(not isinstance(v, str) for v in values.values()):
                raise ValidationFailed(
                    {
                        option: [
                            "Values must be text here: a secret read from a file or environment variable "
                            "is for upstreams declared in settings."
                        ]
                    }
                )
        try:
            config = parse_upstream(name, table)
        except ValueError as exc:
            raise ValidationFailed({_option_of(str(exc), table): [str(exc)]}, "The upstream is not valid.") from None
        refusal = self._refusal(config)
        if refusal is not None:
            raise ValidationFailed({refusal[0]: [refusal[1]]}, "The upstream is not valid.")
        return config

    def _refusal(self, config: UpstreamConfig) -> tuple[str, str] | None:
        """(option, why) when an admin may not run this upstream, else None."""
        if config.allow_private:
            return "allow_private", (
                "An upstream an admin adds reaches public addresses, and the networks the operator lists in "
                "upstream_allowed_networks; allow_private is for upstreams declared in settings."
            )
        if config.transport != "stdio":
            return None
        if "*" not in self.admin_commands and config.command not in self.admin_commands:
            return "command", (
                "Only the commands listed in upstream_admin_commands may be started by an admin "
                f"(now: {', '.join(self.admin_commands) or 'none'}); ask the operator, "
                "or declare the upstream in settings."
            )
        for variable in config.env:
            if any(fnmatchcase(variable.upper(), pattern) for pattern in NEVER_FROM_AN_ADMIN):
                return "env", f"{variable} steers a loader, a shell or an interpreter: an admin may not set it."
            if not any(fnmatchcase(variable, pattern) for pattern in self.admin_env):
                return "env", (
                    f"{variable} is not one of the variables upstream_admin_env lets an admin give "
                    f"(now: {', '.join(self.admin_env) or 'none'}); ask the operator."
                )
        return None

    def _sealed(self, name: str, table: dict[str, Any]) -> dict[str, Any]:
        if not self._key:
            raise RuntimeError("the server secret is needed to keep an upstream's credentials")
        spec = dict(table)
        where = _where_it_runs(table)
        for option in SECRET_MAPS:
            if option in spec:
                spec[option] = {
                    k: {SEALED: seal(self._key, v, name, where, option, k)} for k, v in spec[option].items()
                }
        return spec

    def _opened(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """The stored table with its credentials opened; without the server secret (a CLI command
        that only reads) each one is ``(sealed)``, enough to show the upstream."""
        table = dict(spec)
        where = _where_it_runs(spec)
        opened: list[str] = []
        for option in SECRET_MAPS:
            if option in table:
                if not isinstance(table[option], dict):
                    raise Unsealable(option)
                if not self._key:
                    table[option] = {k: "(sealed)" for k in table[option]}
                    continue
                table[option] = {
                    k: unseal(self._key, v.get(SEALED) if isinstance(v, dict) else None, name, where, option, k)
                    for k, v in table[option].items()
                }
                opened += table[option].values()
        if self._key:
            register_owned_secrets(credentials_owner(name), opened)  # what it had before is let go
        return table

    def _refuse_declared(self, name: str) -> None:
        if any(c.name == name for c in self.declared):
            raise ApiError(UPSTREAM_CONFLICT, f"The upstream {name!r} is declared in settings; change it there.")

    def _not_found(self, name: str) -> ApiError:
        return ApiError(UPSTREAM_NOT_FOUND, f"There is no stored upstream named {name[: MAX_NAME + 8]!r}.")

    def _audit(self, actor: Actor, action: str, name: str, before: Any, after: Any) -> None:
        audit_operator_action(
            actor.name,
            action,
            upstream=name,
            request_id=actor.request_id,
            **{f"actor_{k}": v for k, v in (actor.identity or {}).items()},
            before=config_view(before) if before is not None else None,
            after=config_view(after) if after is not None else None,
        )

    async def _tell(self) -> None:
        if self.changed is not None:
            await self.changed()


def _where_it_runs(table: dict[str, Any]) -> str:
    """What a sealed value is bound to besides its upstream and place: a change of any of these
    (an edited row too) leaves the value unopenable."""
    return json.dumps([table.get(option) for option in WHERE_IT_RUNS], sort_keys=True)


def _option_of(message: str, table: dict[str, Any]) -> str:
    """The option a parser message is about (``upstream 'x': timeout must be ...``), else ``_schema``."""
    if message.startswith("upstream name"):
        return "name"
    unknown = re.search(r"unknown option '([^']*)'", message)
    if unknown is not None and unknown[1] in table:
        return unknown[1]
    _, _, rest = message.partition("': ")
    word = rest.split(" ", 1)[0].rstrip(":").split(".", 1)[0]
    return word if word in table else "_schema"


def config_view(config: UpstreamConfig) -> dict[str, Any]:
    """An upstream's options as admins (and the audit log) see them: never an env or header value."""
    view: dict[str, Any] = {
        "transport": config.transport,
        "enabled": config.enabled,
        "description": config.description,
        "timeout": config.timeout,
        "connect_timeout": config.connect_timeout,
        "max_result_bytes": config.max_result_bytes,
        "tools": list(config.tools),
        "identity": config.identity,
    }
    if config.transport == "stdio":
        view.update(command=config.command, args=list(config.args), cwd=config.cwd, env=sorted(config.env))
    else:
        view.update(
            url=config.target(),
            headers=sorted(config.headers),
            allow_private=config.allow_private,
            identity_header=config.identity_header,
        )
    return view
