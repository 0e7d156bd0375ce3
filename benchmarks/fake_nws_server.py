"""The test suite's fake NWS (tests/support/fake_nws.py) as a process, for the benchmarks.

Run from the repository root: python benchmarks/fake_nws_server.py PORT
"""

import sys
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.fake_nws import FakeNWS


class QuietNWS(FakeNWS):
    async def handle(self, request: web.Request) -> web.StreamResponse:
        response = await super().handle(request)
        self.requests.clear()  # a benchmark keeps no history
        return response


if __name__ == "__main__":
    port = int(sys.argv[1])
    fake = QuietNWS()
    fake.url = f"http://127.0.0.1:{port}"
    web.run_app(fake.app(), host="127.0.0.1", port=port, print=None, access_log=None)
