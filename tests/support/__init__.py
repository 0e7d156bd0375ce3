"""What the tests share: fake upstreams and issuers, server processes, raw HTTP, protocol helpers."""
