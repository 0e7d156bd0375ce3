"""``skywarden keys ...`` and ``skywarden admin-token ...``: direct store access for bootstrap and break-glass."""

from __future__ import annotations

import argparse
from collections.abc import Callable


def add_admin_commands(
    sub: argparse._SubParsersAction, add_setting_flags: Callable[[argparse.ArgumentParser], None]
) -> None:
    return None
