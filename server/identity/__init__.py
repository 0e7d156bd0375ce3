"""OAuth access tokens from OpenID issuers: admin sign-in and resource-server mode (docs/identity.md)."""
