"""Plugin API 2 objects that fake distributions' entry points name (``fake_distribution``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from marshmallow import validate

from skywarden.tools import Context, Plugin, Url, setting, tool


@tool(cost=1)
async def word_count(ctx: Context, text: Annotated[str, "The text to count", validate.Length(min=1)]) -> int:
    """Count the words in a text."""
    return len(text.split())


@dataclass(frozen=True)
class AcmeSettings:
    base_url: Url = setting("https://api.acme.test", help="Acme API base URL")


acme = Plugin("acme", settings=AcmeSettings, user_agent="acme-tools/2.0", title="Acme")


@dataclass
class Thing:
    name: str
    size: int | None = None


@acme.tool(scopes=["acme"], annotations={"readOnlyHint": True})
async def lookup(ctx: Context[AcmeSettings], id: int) -> Thing:
    """Look a thing up."""
    return Thing(name=f"thing {id}", size=id)


@acme.tool(scopes=["acme"])
async def describe(ctx: Context[AcmeSettings], name: str, loud: bool = False) -> str:
    """Describe a thing."""
    return name.upper() if loud else name


@acme.on_startup
async def connect(ctx: Context[AcmeSettings]) -> None:
    ctx.state.connected = True


@acme.on_shutdown
async def disconnect(ctx: Context[AcmeSettings]) -> None:
    ctx.state.connected = False


other_acme = Plugin("acme")  # another plugin of the same name


@other_acme.tool
async def other_lookup(ctx: Context, id: int) -> str:
    """Another plugin's tool."""
    return str(id)


empty = Plugin("empty")  # declares no tool


@tool
def not_async(text: str) -> str:  # not async: a plugin bug the loader refuses
    """Not async."""
    return text
