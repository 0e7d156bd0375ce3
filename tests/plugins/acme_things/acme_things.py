"""Things from the Acme API: a plugin with settings, an upstream API, a start-up hook and state."""

from dataclasses import dataclass

from skywarden.tools import Context, Plugin, Secret, ToolError, UpstreamError, Url, setting


@dataclass(frozen=True)
class AcmeSettings:
    base_url: Url = setting("https://api.acme.test", help="Acme API base URL")
    api_key: Secret = setting(help="Acme API key")  # required; or acme_api_key_file
    user_agent: str = setting("", help="User-Agent sent to Acme; empty: the package's name and version")


things = Plugin("acme", settings=AcmeSettings, title="the Acme API")


@dataclass
class Thing:
    name: str
    size: int | None = None


def acme_headers(ctx: Context[AcmeSettings]) -> dict[str, str | Secret]:
    return {"X-Api-Key": ctx.settings.api_key}


@things.on_startup
async def find_account(ctx: Context[AcmeSettings]) -> None:
    """Stop the start now if Acme refuses the key, rather than at every call."""
    answer = await ctx.http.request("GET", f"{ctx.settings.base_url}/me", headers=acme_headers(ctx))
    if answer.status != 200:
        raise RuntimeError(f"Acme refused the key (HTTP {answer.status})")
    ctx.state.account = answer.json()["account"]


@things.tool(scopes=["acme"], cache_ttl=60, annotations={"readOnlyHint": True})
async def get_thing(ctx: Context[AcmeSettings], id: int) -> Thing:
    """Look a thing up by its number."""
    try:
        found = await ctx.http.get_json(f"{ctx.settings.base_url}/things/{id}", headers=acme_headers(ctx))
    except UpstreamError as exc:
        if exc.status == 404:
            raise ToolError(f"There is no thing {id}.") from exc
        raise
    return Thing(name=found["name"], size=found.get("size"))


@things.tool(scopes=["acme"], cost=5)
async def add_thing(ctx: Context[AcmeSettings], name: str, size: int | None = None) -> Thing:
    """Add a thing to the Acme account."""
    answer = await ctx.http.request(
        "POST",
        f"{ctx.settings.base_url}/accounts/{ctx.state.account}/things",
        headers=acme_headers(ctx),
        json={"name": name, "size": size},
    )
    if answer.status != 201:
        raise ToolError(f"Acme did not add the thing (HTTP {answer.status}).")
    return Thing(**answer.json())
