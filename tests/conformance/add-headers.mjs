// Node preload used by tests/test_mcp_conformance.py: the MCP conformance suite has no option to
// send extra headers, so this adds the ones in SKYWARDEN_CONFORMANCE_HEADERS (a JSON object) to
// every request it makes, whether through fetch/undici or through node:http.
import { createRequire } from 'node:module';
import http from 'node:http';

const extra = JSON.parse(process.env.SKYWARDEN_CONFORMANCE_HEADERS || '{}');

const require = createRequire(process.env.SKYWARDEN_CONFORMANCE_MODULES + '/');
const { Agent, setGlobalDispatcher } = require('undici');

function withExtra(headers) {
  if (Array.isArray(headers)) {
    const present = new Set(headers.filter((_, i) => i % 2 === 0).map((k) => String(k).toLowerCase()));
    const out = [...headers];
    for (const [k, v] of Object.entries(extra)) if (!present.has(k.toLowerCase())) out.push(k, v);
    return out;
  }
  const out = { ...(headers || {}) };
  const present = new Set(Object.keys(out).map((k) => k.toLowerCase()));
  for (const [k, v] of Object.entries(extra)) if (!present.has(k.toLowerCase())) out[k] = v;
  return out;
}

setGlobalDispatcher(new Agent().compose((dispatch) => (opts, handler) =>
  dispatch({ ...opts, headers: withExtra(opts.headers) }, handler)));

const originalRequest = http.request;
http.request = function (...args) {
  const req = originalRequest.apply(this, args);
  for (const [k, v] of Object.entries(extra)) {
    if (!req.hasHeader(k)) req.setHeader(k, v);
  }
  return req;
};
