// The Skywarden admin console: plain ES module over the admin API, no framework, no build step.
// The credential (admin token or an admin's access token) lives in this module's memory only:
// never in storage, a cookie or a URL. Every value from the server is set with textContent.

const IDLE_MINUTES = 15;
const $ = (id) => document.getElementById(id);
const state = { token: null, keys: [], upstreams: [], tools: [], sort: { field: "name", descending: false }, idleTimer: null, current: null, refreshing: null, again: null, removing: null };

function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("error", isError);
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

// A link-styled button that opens a key's details.
function keyLink(text, keyId) {
  const open = el("button", text, { type: "button", class: "link" });
  open.addEventListener("click", () => showKey(keyId));
  return open;
}

// A table body's rows, or one row saying there are none.
function fillTable(body, rows, emptyText, columns) {
  if (!rows.length) {
    const row = el("tr");
    row.append(el("td", emptyText, { colspan: String(columns) }));
    rows = [row];
  }
  body.replaceChildren(...rows);
}

function tableRow(...cells) {
  const row = el("tr");
  row.append(...cells.map((cell) => (cell instanceof Node ? cell : el("td", cell))));
  return row;
}

class ApiError extends Error {
  constructor(status, detail, errors = []) {
    super(detail);
    this.status = status;
    this.errors = errors;  // a 422's [{field, messages}]
  }
}

async function api(path, options = {}) {
  resetIdle();
  const headers = { Authorization: `Bearer ${state.token}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 204) return null;
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    let detail = body.detail || (body.error && body.error.message) || `HTTP ${response.status}`;
    if (Array.isArray(body.errors)) detail += " " + body.errors.map((e) => `${e.field}: ${e.messages.join(" ")}`).join("; ");
    if (response.status === 401) signOut("Your sign-in is no longer accepted; sign in again.");
    throw new ApiError(response.status, detail, Array.isArray(body.errors) ? body.errors : []);
  }
  return body;
}

// --- sign-in, sign-out, idle timeout ----------------------------------------------------------

function resetIdle() {
  clearTimeout(state.idleTimer);
  if (state.token) state.idleTimer = setTimeout(() => signOut("Signed out after 15 minutes without activity."), IDLE_MINUTES * 60000);
}

async function signIn(token, label) {
  state.token = token;
  try {
    await api("/api/admin/keys?limit=1");
  } catch (error) {
    state.token = null;
    say(error.status === 403 ? `Signed in, but not as an admin: ${error.message}` : `Sign-in refused: ${error.message}`, true);
    return;
  }
  $("who").textContent = label;
  $("sign-in").hidden = true;
  $("console").hidden = false;
  $("sign-out").hidden = false;
  say("");
  resetIdle();
  await refresh();
  $("main").focus();
}

function signOut(text = "Signed out.") {
  state.token = null;
  state.keys = [];
  state.upstreams = [];
  clearTimeout(state.idleTimer);
  for (const dialog of document.querySelectorAll("dialog")) if (dialog.open) dialog.close();
  $("revealed").value = "";
  forgetUpstreamSecrets();
  $("keys-body").replaceChildren();
  $("upstreams-body").replaceChildren();
  $("denials-body").replaceChildren();
  $("top-keys").replaceChildren();
  $("updated").textContent = "";
  $("who").textContent = "";
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  say(text);
}

// --- keys list ----------------------------------------------------------------------------------

function formatTime(value) {
  return value ? new Date(value).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "never";
}

function expiringSoon(key) {
  return key.expires_at && new Date(key.expires_at) - Date.now() < 7 * 86400000 && key.status === "active";
}

function visibleKeys() {
  const text = $("search").value.trim().toLowerCase();
  const status = $("status-filter").value;
  const env = $("env-filter").value;
  const scope = $("scope-filter").value;
  const expiring = $("expiring-filter").checked;
  const { field, descending } = state.sort;
  return state.keys
    .filter((k) => !text || [k.name, k.owner || "", k.prefix].some((v) => v.toLowerCase().includes(text)))
    .filter((k) => !status || k.status === status)
    .filter((k) => !env || k.environment === env)
    .filter((k) => !scope || k.scopes.includes(scope) || k.scopes.includes("*"))
    .filter((k) => !expiring || expiringSoon(k))
    .sort((a, b) => {
      const x = a[field] ?? "";
      const y = b[field] ?? "";
      const order = x < y ? -1 : x > y ? 1 : 0;
      return descending ? -order : order;
    });
}

function renderKeys() {
  const rows = visibleKeys().map((key) => {
    const nameCell = el("td");
    nameCell.append(keyLink(key.name, key.id));
    return tableRow(nameCell, key.prefix, key.status, formatTime(key.last_used_at), key.use_count,
      key.expires_at ? formatTime(key.expires_at) : "never");
  });
  fillTable($("keys-body"), rows, "No keys match.", 6);
  for (const button of document.querySelectorAll("[data-sort]")) {
    const active = button.dataset.sort === state.sort.field;
    button.closest("th").setAttribute("aria-sort", active ? (state.sort.descending ? "descending" : "ascending") : "none");
  }
}

// --- usage and denials --------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
const CHART = { width: 300, height: 80 };

// The smallest 1, 2 or 5 times a power of ten at or above n: the top of the y axis.
function niceCeiling(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= n);
}

function bucketLabel(iso, bucket) {
  const text = new Date(iso).toISOString();
  return bucket === "day" ? text.slice(5, 10) : text.slice(11, 16);
}

function svgNode(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

// Bars for a usage series, with a labelled scale: the y axis from 0 to a round maximum (and
// its middle), the x axis with the first, middle and last bucket (UTC), and a caption naming both.
function drawBars(svg, series, bucket) {
  const figure = svg.closest("figure");
  const top = niceCeiling(Math.max(0, ...series.map((b) => b.count)));
  const width = CHART.width / Math.max(1, series.length);
  const grid = [top, top / 2].map((value) => svgNode("line", {
    x1: 0, x2: CHART.width, y1: CHART.height - (value / top) * CHART.height, y2: CHART.height - (value / top) * CHART.height,
    class: "chart-grid", "vector-effect": "non-scaling-stroke" }));
  const bars = series.map((b, i) => {
    const height = (b.count / top) * CHART.height;
    const bar = svgNode("rect", { x: i * width + 0.5, y: CHART.height - height, width: Math.max(0.5, width - 1), height, class: "chart-bar" });
    const title = svgNode("title", {});
    title.textContent = `${formatTime(b.start)}: ${b.count}`;
    bar.append(title);
    return bar;
  });
  svg.replaceChildren(...grid, ...bars);
  const middle = top / 2;
  figure.querySelector(".y-axis").replaceChildren(
    el("span", top), el("span", Number.isInteger(middle) ? middle : ""), el("span", 0));
  const picks = series.length ? [series[0], series[Math.floor(series.length / 2)], series[series.length - 1]] : [];
  figure.querySelector(".x-axis").replaceChildren(...picks.map((b) => el("span", bucketLabel(b.start, bucket))));
  figure.querySelector("figcaption").textContent =
    `Requests per ${bucket === "day" ? "day" : "hour"} (scale 0 to ${top}); times in UTC`;
}

async function renderUsage() {
  const usage = await api(`/api/admin/usage?window=${$("usage-window").value}`);
  $("usage-total").textContent = `${usage.total} requests in the ${usage.window === "24h" ? "last 24 hours" : "last 30 days"}`;
  drawBars($("usage-chart"), usage.series, usage.bucket);
  // Name and prefix wrap inside their own box; the count stays at the right edge of its row.
  $("top-keys").replaceChildren(...usage.top.map((top) => {
    const open = keyLink(top.name, top.key_id);
    open.classList.add("top-name");
    open.append(" ", el("span", `(${top.prefix})`, { class: "prefix" }));
    const row = el("div", null, { class: "top-key" });
    row.append(open, el("span", top.count, { class: "count" }));
    const item = el("li");
    item.append(row);
    return item;
  }));
  $("top-keys-empty").hidden = usage.top.length > 0;
}

async function renderDenials() {
  const { denials } = await api("/api/admin/denials?limit=50");
  const rows = denials.map((d) => {
    const keyCell = el("td");
    // A refused key that was never recognised (revoked, expired) is still found by its prefix.
    const keyId = d.key_id || (d.key_prefix && state.keys.find((k) => k.prefix === d.key_prefix)?.id);
    if (keyId) {
      keyCell.append(keyLink(d.key_prefix || keyId, keyId));
    } else {
      const credential = d.reason === "missing" ? "no key" : "unrecognised credential";
      keyCell.textContent = d.key_prefix || (d.subject ? `token: ${d.subject}` : credential);
    }
    return tableRow(d.time.replace("T", " ").slice(0, 19) + " UTC", d.client_ip || "", keyCell, d.reason || "", d.status);
  });
  fillTable($("denials-body"), rows, "No denials recorded.", 5);
}

// Reloads everything the console shows. Asked again while a reload runs, it runs once more
// after it (however often it was asked), so what is shown is never older than the last ask.
function refresh() {
  if (state.refreshing) {
    state.again ||= state.refreshing.then(() => { state.again = null; return refresh(); });
    return state.again;
  }
  state.refreshing = load().finally(() => { state.refreshing = null; });
  return state.refreshing;
}

// What a key's scopes may name: this server's own tools (public, read before sign-in), and each
// upstream's grants and the tools it offers now (from the admin API). Read again at every reload.
async function loadTools() {
  const response = await fetch("/admin/config.json", { cache: "no-store", credentials: "omit" });
  if (!response.ok) throw new Error(`Could not read the tool names: HTTP ${response.status}`);
  const config = await response.json();
  state.ownTools = config.tools;
  if (!state.tools.length) state.tools = config.tools; // until the upstreams' are read
  return config;
}

function upstreamGrants(upstreams) {
  return upstreams.flatMap((upstream) => [...(upstream.grants || []), ...upstream.tools]);
}

async function load() {
  $("console").setAttribute("aria-busy", "true");
  try {
    await loadTools();
    const { keys } = await api("/api/admin/keys?limit=1000");
    state.keys = keys;
    try {
      state.upstreams = (await api("/api/admin/upstreams")).upstreams;
    } catch (error) {
      if (!state.token) throw error; // signed out (a 401): that is what the page says
      say(`Could not load the upstreams: ${error.message}`, true);
    }
    state.tools = [...new Set([...state.ownTools, ...upstreamGrants(state.upstreams || [])])].sort();
    const scopeFilter = $("scope-filter");
    const chosen = scopeFilter.value;
    scopeFilter.replaceChildren(el("option", "any", { value: "" }), ...state.tools.map((t) => el("option", t)));
    scopeFilter.value = chosen;
    renderKeys();
    await renderUsage();
    renderUpstreamRows();
    await renderDenials();
    $("updated").textContent = `Updated ${new Date().toISOString().slice(11, 19)} UTC`;
  } catch (error) {
    if (state.token) say(`Could not load: ${error.message}`, true);
  } finally {
    $("console").removeAttribute("aria-busy");
  }
}

// --- upstreams: list, add, enable or disable, remove ------------------------------------------

// Text with a part only a screen reader reads: "Disable" shown, "Disable calc" announced.
function named(tag, text, name, attrs = {}) {
  const node = el(tag, text, attrs);
  node.append(el("span", ` ${name}`, { class: "visually-hidden" }));
  return node;
}

function upstreamTarget(options) {
  if (options.transport === "stdio") return [options.command, ...(options.args || [])].join(" ");
  return options.url || "";
}

function toolsCell(upstream) {
  const cell = el("td");
  if (!upstream.tools.length) {
    cell.textContent = "0";
    return cell;
  }
  const details = el("details");
  const summary = el("summary", `${upstream.tools.length} ${upstream.tools.length === 1 ? "tool" : "tools"}`);
  const list = el("ul", null, { class: "tool-names" });
  list.append(...upstream.tools.map((tool) => el("li", tool)));
  details.append(summary, list);
  cell.append(details);
  return cell;
}

function stateText(upstream) {
  if (upstream.calls === undefined) return upstream.state;
  return `${upstream.state} (${upstream.calls} calls, ${upstream.errors} errors, ${upstream.restarts} restarts)`;
}

function upstreamActions(upstream) {
  const cell = el("td", null, { class: "actions" });
  if (upstream.source !== "admin") {
    cell.append(el("span", "in settings", { class: "hint" }));
    return cell;
  }
  const enabled = upstream.options && upstream.options.enabled;
  if (typeof enabled === "boolean") {
    const toggle = named("button", enabled ? "Disable" : "Enable", upstream.name, { type: "button" });
    toggle.addEventListener("click", () => act(async () => {
      await api(`/api/admin/upstreams/${encodeURIComponent(upstream.name)}`, { method: "PATCH", body: { enabled: !enabled } });
    }, `Upstream ${upstream.name} ${enabled ? "disabled" : "enabled"}.`));
    cell.append(toggle, " ");
  }
  const remove = named("button", "Remove", upstream.name, { type: "button", class: "danger" });
  remove.addEventListener("click", () => askRemove(upstream.name));
  cell.append(remove);
  return cell;
}

function renderUpstreamRows() {
  const rows = state.upstreams.map((upstream) => {
    const options = upstream.options || {};
    const nameCell = el("td");
    nameCell.append(el("span", upstream.name, { class: "upstream-name" }));
    if (options.description) nameCell.append(el("span", options.description, { class: "hint description" }));
    const problem = upstream.problem || upstream.last_error || "";
    return tableRow(nameCell, upstream.source, options.transport || "", upstreamTarget(options),
      el("td", stateText(upstream), { class: `state state-${upstream.state}` }), toolsCell(upstream),
      el("td", problem, { class: problem ? "problem" : "" }), upstreamActions(upstream));
  });
  fillTable($("upstreams-body"), rows, "No upstreams: add one, or declare them in settings.", 8);
}

// "Name: value" lines as an object. A line's value may be a secret: no message quotes a line.
function namedLines(text, field) {
  const found = {};
  const problems = [];
  text.split(/\r?\n/).forEach((line, index) => {
    if (!line.trim()) return;
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon).trim() : "";
    if (!name) {
      problems.push({ field, messages: [`Line ${index + 1} is not "Name: value".`] });
    } else if (Object.hasOwn(found, name)) {
      problems.push({ field, messages: [`${name} is given twice.`] });
    } else {
      found[name] = line.slice(colon + 1).trim();
    }
  });
  return { found, problems };
}

function showUpstreamErrors(errors) {
  const box = $("upstream-errors");
  $("upstream-errors-list").replaceChildren(...errors.map((e) => el("li", `${e.field}: ${e.messages.join(" ")}`)));
  box.hidden = errors.length === 0;
}

function chooseTransport() {
  const stdio = $("upstream-transport").value === "stdio";
  for (const [id, shown] of [["upstream-remote", !stdio], ["upstream-stdio", stdio]]) {
    $(id).hidden = !shown;
    $(id).disabled = !shown;  // a hidden part is neither checked nor sent
  }
}

function forgetUpstreamSecrets() {
  $("upstream-headers").value = "";
  $("upstream-env").value = "";
}

function openUpstreamForm() {
  $("upstream-form").reset();
  showUpstreamErrors([]);
  chooseTransport();
  $("upstream-dialog").showModal();
}

// The request body from the form, or the problems that keep it from being sent.
function upstreamBody() {
  const transport = $("upstream-transport").value;
  const body = { name: $("upstream-name").value.trim(), transport, enabled: $("upstream-enabled").checked };
  const description = $("upstream-description").value.trim();
  if (description) body.description = description;
  let secrets;
  if (transport === "stdio") {
    body.command = $("upstream-command").value.trim();
    const args = $("upstream-args").value.split(/\r?\n/).filter((line) => line !== "");
    if (args.length) body.args = args;
    secrets = namedLines($("upstream-env").value, "env");
    if (Object.keys(secrets.found).length) body.env = secrets.found;
  } else {
    body.url = $("upstream-url").value.trim();
    secrets = namedLines($("upstream-headers").value, "headers");
    if (Object.keys(secrets.found).length) body.headers = secrets.found;
  }
  return { body, problems: secrets.problems };
}

async function addUpstream() {
  const { body, problems } = upstreamBody();
  showUpstreamErrors(problems);
  if (problems.length) {
    say("The upstream was not added: see the form.", true);
    return;
  }
  try {
    await api("/api/admin/upstreams", { method: "POST", body });
  } catch (error) {
    showUpstreamErrors(error.errors.length ? error.errors : [{ field: "upstream", messages: [error.message] }]);
    say(`The upstream was not added: ${error.message}`, true);
    return;
  }
  forgetUpstreamSecrets();
  $("upstream-form").reset();
  $("upstream-dialog").close();
  say(`Upstream ${body.name} added${body.enabled ? "" : " (disabled)"}.`);
  await refresh();
}

function askRemove(name) {
  state.removing = name;
  $("remove-upstream-text").textContent =
    `Remove the upstream ${name}? Its tools go at once, on every instance, for every key.`;
  $("remove-upstream-confirm").checked = false;
  $("remove-upstream-dialog").showModal();
}

// --- one key: detail, edit, rotate, revoke ---------------------------------------------------

function scopeBoxes(fieldset, chosen) {
  const legend = fieldset.querySelector("legend");
  // a scope the key has is always shown, chosen, even when its upstream is gone or was not read
  const boxes = [...new Set(["*", ...state.tools, ...chosen])].map((tool) => {
    const label = el("label", null, { class: "check" });
    const box = el("input", null, { type: "checkbox", value: tool, name: "scope" });
    box.checked = chosen.includes(tool);
    label.append(box, document.createTextNode(tool === "*" ? " every tool" : ` ${tool}`));
    return label;
  });
  fieldset.replaceChildren(legend, ...boxes);
}

function chosenScopes(fieldset) {
  return [...fieldset.querySelectorAll("input:checked")].map((box) => box.value);
}

function localInput(iso) {
  return iso ? new Date(iso).toISOString().slice(0, 16) : "";
}

function isoFromInput(value) {
  return value ? new Date(value + "Z").toISOString() : null;
}

async function showKey(keyId) {
  let key;
  try {
    key = await api(`/api/admin/keys/${encodeURIComponent(keyId)}`);
  } catch (error) {
    say(`Could not open the key: ${error.message}`, true);
    return;
  }
  state.current = key;
  $("key-dialog-title").textContent = key.name;
  const facts = [
    ["Prefix", key.prefix], ["Status", key.status], ["Environment", key.environment], ["Owner", key.owner || "none"],
    ["Scopes", key.scopes.join(", ")], ["Rate limit", key.rate_limit || "server default"],
    ["Created", `${formatTime(key.created_at)} by ${key.created_by || "unknown"}`], ["Expires", key.expires_at ? formatTime(key.expires_at) : "never"],
    ["Last used", formatTime(key.last_used_at)], ["Uses", key.use_count],
    ["Revoked", key.revoked_at ? `${formatTime(key.revoked_at)}: ${key.revoked_reason || ""}` : "no"],
    ["Metadata", JSON.stringify(key.metadata)],
  ];
  $("key-details").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", name), el("dd", value)]));
  $("edit-name").value = key.name;
  $("edit-rate").value = key.rate_limit || "";
  $("edit-expires").value = localInput(key.expires_at);
  scopeBoxes($("edit-scopes"), key.scopes);
  for (const form of ["edit-form", "rotate-form", "revoke-form"]) $(form).hidden = key.status === "revoked";
  $("revoke-reason").value = "";
  $("revoke-confirm").checked = false;
  const usage = await api(`/api/admin/usage?window=24h&key_id=${encodeURIComponent(key.id)}`);
  drawBars($("key-chart"), usage.series, usage.bucket);
  if (!$("key-dialog").open) $("key-dialog").showModal();
}

function reveal(key) {
  $("revealed").value = key;
  $("reveal-dialog").showModal();
  $("revealed").select();
}

async function act(work, done) {
  try {
    await work();
    say(done);
    await refresh();
  } catch (error) {
    say(error.message, true);
  }
}

// --- wiring --------------------------------------------------------------------------------------

function wire() {
  $("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const input = $("admin-token");
    const token = input.value.trim();
    input.value = "";
    await signIn(token, "Signed in with the admin token");
  });
  $("sign-out").addEventListener("click", () => signOut());
  $("refresh").addEventListener("click", () => refresh());
  for (const id of ["search", "status-filter", "env-filter", "scope-filter", "expiring-filter"]) {
    $(id).addEventListener("input", renderKeys);
  }
  $("filters").addEventListener("submit", (event) => event.preventDefault());
  for (const button of document.querySelectorAll("[data-sort]")) {
    button.addEventListener("click", () => {
      const field = button.dataset.sort;
      state.sort = { field, descending: state.sort.field === field ? !state.sort.descending : false };
      renderKeys();
    });
  }
  $("usage-window").addEventListener("change", () => renderUsage().catch((e) => say(e.message, true)));
  $("new-key").addEventListener("click", () => {
    $("create-form").reset();
    scopeBoxes($("create-scopes"), ["*"]);
    $("create-dialog").showModal();
  });
  $("create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = { name: $("create-name").value, environment: $("create-env").value, scopes: chosenScopes($("create-scopes")) };
    if ($("create-owner").value) body.owner = $("create-owner").value;
    if ($("create-expires").value) body.expires_at = isoFromInput($("create-expires").value);
    act(async () => {
      const created = await api("/api/admin/keys", { method: "POST", body });
      $("create-dialog").close();
      reveal(created.key);
    }, "Key created.");
  });
  $("edit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = state.current;
    const body = { name: $("edit-name").value, scopes: chosenScopes($("edit-scopes")), rate_limit: $("edit-rate").value || null,
      expires_at: isoFromInput($("edit-expires").value) };
    act(async () => { await api(`/api/admin/keys/${encodeURIComponent(key.id)}`, { method: "PATCH", body }); await showKey(key.id); }, "Key saved.");
  });
  $("rotate-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = state.current;
    act(async () => {
      const rotated = await api(`/api/admin/keys/${encodeURIComponent(key.id)}/rotate`, {
        method: "POST", body: { grace_seconds: Number($("grace").value) } });
      $("key-dialog").close();
      reveal(rotated.key);
    }, "Key rotated: the old key works until its grace period ends.");
  });
  $("revoke-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = state.current;
    act(async () => {
      await api(`/api/admin/keys/${encodeURIComponent(key.id)}`, { method: "DELETE", body: { reason: $("revoke-reason").value } });
      $("key-dialog").close();
    }, "Key revoked.");
  });
  $("new-upstream").addEventListener("click", openUpstreamForm);
  $("upstream-transport").addEventListener("change", chooseTransport);
  $("upstream-form").addEventListener("submit", (event) => {
    event.preventDefault();
    addUpstream();
  });
  $("upstream-dialog").addEventListener("close", forgetUpstreamSecrets);  // Escape closes it too
  $("remove-upstream-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = state.removing;
    act(async () => {
      await api(`/api/admin/upstreams/${encodeURIComponent(name)}`, { method: "DELETE" });
      $("remove-upstream-dialog").close();
    }, `Upstream ${name} removed.`);
  });
  $("copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("revealed").value);
      say("Copied.");
    } catch {
      $("revealed").select();
      say("Select the key and copy it (Ctrl+C).");
    }
  });
  const forget = () => { $("revealed").value = ""; };
  $("reveal-dialog").addEventListener("close", forget);  // Escape closes it too
  for (const dialog of document.querySelectorAll("dialog")) {
    for (const button of dialog.querySelectorAll("[data-close]")) {
      button.addEventListener("click", () => {
        if (dialog.id === "reveal-dialog") forget();
        dialog.close();
      });
    }
  }
  for (const kind of ["keydown", "pointerdown"]) document.addEventListener(kind, resetIdle, { passive: true });
}

// What single sign-on can end in, by the code the server sends (server/console/sso.py
// SIGN_IN_ERRORS has the same codes). The page shows only these sentences for a code from its
// address: no text from the address (fragment, query) or from another page is ever shown.
const SIGN_IN_ERRORS = new Map([
  ["expired", "This sign-in expired or was already used; sign in again."],
  ["other_browser", "This sign-in was started in another browser, or this browser did not keep its sign-in cookie; sign in again here."],
  ["unavailable", "The identity provider cannot be reached; try again shortly."],
  ["busy", "Too many sign-ins are in progress; try again shortly."],
  ["cancelled", "The identity provider did not sign you in; sign in again."],
  ["provider_error", "The identity provider refused the sign-in."],
  ["code_refused", "The identity provider refused to exchange the sign-in code."],
  ["token_refused", "The identity provider's token was refused."],
  ["not_admin", "You are signed in, but not as a Skywarden admin."],
  ["cross_site", "A sign-in can be started and finished only from the console's own page."],
]);
const UNKNOWN_SIGN_IN_ERROR = "The sign-in did not complete; sign in again.";

function signInError(code) {
  return SIGN_IN_ERRORS.get(code) || UNKNOWN_SIGN_IN_ERROR;
}

// The handle from the address is only ever sent back to the server, with the browser's sign-in
// cookie; what is shown comes from the server's answer.
async function redeem(handle) {
  const response = await fetch("/admin/oidc/redeem", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ handle }),
    credentials: "same-origin", cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (response.ok && typeof body.access_token === "string") {
    await signIn(body.access_token, `Signed in as ${body.name}`);
  } else {
    const known = typeof body.code === "string" && SIGN_IN_ERRORS.has(body.code);
    const detail = known && typeof body.detail === "string" ? body.detail : signInError(body.code);
    say(`Single sign-on failed: ${detail}`, true);
  }
}

async function start() {
  const config = await loadTools();
  $("sso").hidden = !config.sso;
  wire();
  const returned = new URLSearchParams(location.hash.slice(1));
  // A one-time handle leaves the address bar at once, and so does anything else put there.
  if (location.hash || location.search) history.replaceState(null, "", location.pathname);
  const handle = returned.get("signin");
  if (handle) {
    await redeem(handle);
  } else if (returned.has("error")) {
    say(`Single sign-on failed: ${signInError(returned.get("error"))}`, true);
  }
}

start();
