"""Fake third-party distributions (``fake_distribution``) and the objects their entry points point at."""

from marshmallow import Schema, fields

from skywarden.tools import ToolResult, text_content


class EchoArgs(Schema):
    text = fields.String(required=True)


class Echo:
    name = "echo"
    title = "Echo"
    description = "Returns its text"
    Arguments = EchoArgs

    async def call(self, arguments, context):
        return ToolResult(content=[text_content(arguments["text"])])


echo = Echo()


class NotATool:
    name = "bad name with spaces"
    description = "x"
    Arguments = EchoArgs

    async def call(self, arguments, context):
        return None


not_a_tool = NotATool()


class SyncCall(Echo):
    name = "sync_call"

    def call(self, arguments, context):  # not async: breaks the contract
        return None


sync_call = SyncCall()


class Explodes(Echo):
    name = "explodes"

    async def call(self, arguments, context):
        raise RuntimeError("boom: internal detail")


explodes = Explodes()


class FakeAlerts(Echo):
    name = "get_alerts"


fake_alerts = FakeAlerts()


SIGNALS: dict = {}  # tests put asyncio.Events here: "started", "cancelled"


class Waits(Echo):
    """Waits until cancelled, reporting both moments through SIGNALS."""

    name = "waits"

    async def call(self, arguments, context):
        import asyncio

        SIGNALS["started"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            SIGNALS["cancelled"].set()
            raise


waits = Waits()


class Costly(Echo):
    name = "costly"
    cost = 3


costly = Costly()


class LookupArgs(Schema):
    id = fields.Integer(required=True)


class Lookup:
    """A plugin that reads its own settings group and calls its upstream, as third-party tools do."""

    name = "lookup"
    title = "Lookup"
    description = "Looks a thing up at the configured upstream"
    settings_group = "lookup"
    Arguments = LookupArgs

    async def call(self, arguments, context):
        data = await context.upstream.get_json(
            f"{context.settings['base_url']}/things/{arguments['id']}", service="Things API"
        )
        return ToolResult(content=[text_content(data["name"])], structured=data)


lookup = Lookup()


def fake_distribution(root, name: str, entry_points: dict[str, str]) -> None:
    """Write a minimal installed distribution (dist-info) into ``root``."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[skywarden.tools]\n{lines}\n")
