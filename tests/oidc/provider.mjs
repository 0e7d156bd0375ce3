// A real OpenID provider (npm oidc-provider) for the identity tests, on loopback.
// Usage: node provider.mjs CONFIG.json ENTRY — CONFIG has port, jwks (private keys, the first signs),
// clients (oidc-provider client metadata plus "roles"), resources ({uri: scope}).
// Prints "listening <issuer>" once it answers; GET /test/jwks-requests counts JWKS fetches.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

// The package lives in the test tools' prefix, not beside this file: its entry point comes in argv[3].
const { default: Provider } = await import(pathToFileURL(process.argv[3]).href);

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const issuer = `http://127.0.0.1:${config.port}`;
const roles = Object.fromEntries(config.clients.map((c) => [c.client_id, c.roles]));
const users = config.users || {}; // people who sign in through the dev login form: accountId -> roles
const clients = config.clients.map(({ roles: _, ...client }) => ({
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  ...client,
}));

const provider = new Provider(issuer, {
  clients,
  jwks: config.jwks,
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: Object.keys(users).length > 0 },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (ctx, resource) => {
        // A key ending in "*" stands for every resource it begins (test servers get their port late).
        const match = Object.keys(config.resources).find((k) => k === resource || (k.endsWith('*') && resource.startsWith(k.slice(0, -1))));
        const scope = match === undefined ? undefined : config.resources[match];
        if (scope === undefined) throw new Error(`unknown resource ${resource}`);
        return { scope, audience: resource, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  scopes: [...new Set(['openid', ...Object.values(config.resources).join(' ').split(' ')])],
  claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
  findAccount: (ctx, id) => ({ accountId: id, claims: () => ({ sub: id, name: id, email: `${id}@example.test` }) }),
  extraTokenClaims: (ctx, token) => {
    if (token.accountId) {
      return { roles: users[token.accountId] || [], name: token.accountId, email: `${token.accountId}@example.test` };
    }
    const clientRoles = roles[token.clientId];
    return clientRoles ? { roles: clientRoles, email: `${token.clientId}@example.test` } : undefined;
  },
});
provider.proxy = false;

let jwksRequests = 0;
provider.use(async (ctx, next) => {
  if (ctx.path === '/jwks') jwksRequests += 1;
  if (ctx.path === '/test/jwks-requests') {
    ctx.body = { count: jwksRequests };
    return;
  }
  await next();
});

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
