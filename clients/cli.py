"""``skywarden-client`` command line."""

import sys


def main() -> int:
    print("skywarden-client: not implemented yet", file=sys.stderr)
    return 2
