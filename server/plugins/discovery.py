"""The entry points of the group ``skywarden.tools``, with the distribution offering each."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from importlib import metadata

ENTRY_POINT_GROUP = "skywarden.tools"


def entry_points(paths: list[str] | None = None) -> Iterator[tuple[metadata.EntryPoint, str]]:
    """The group's entry points with their distributions' "name version"; ``paths`` overrides
    sys.path. ``entry_points(group=...)`` reads the metadata of the distributions that have one,
    not of every installed distribution."""
    if paths is None:
        selected: Iterable[metadata.EntryPoint] = metadata.entry_points(group=ENTRY_POINT_GROUP)
    else:
        dists = metadata.distributions(path=paths)
        selected = [ep for dist in dists for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP)]
    seen: set[tuple[str, str, str]] = set()
    for ep in selected:
        dist = ep.dist
        name = dist.metadata["Name"] if dist is not None else "unknown"
        marker = (name, ep.name, ep.value)
        if marker in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(marker)
        yield ep, f"{name} {dist.version if dist is not None else ''}".strip()
