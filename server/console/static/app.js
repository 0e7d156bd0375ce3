// The Skywarden admin console: plain ES module over the admin API, no framework, no build step.
// The credential (admin token or an admin's access token) lives in this module's memory only:
// never in storage, a cookie or a URL. Every value from the server is set with textContent.

const IDLE_MINUTES = 15;
const $ = (id) => document.getElementById(id);
const state = { token: null, keys: [], tools: [], sort: { field: "name", descending: false }, idleTimer: null, current: null };

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
  constructor(status, detail) {
    super(detail);
    this.status = status;
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
    throw new ApiError(response.status, detail);
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
  clearTimeout(state.idleTimer);
  for (const dialog of document.querySelectorAll("dialog")) if (dialog.open) dialog.close();
  $("revealed").value = "";
  $("keys-body").replaceChildren();
  $("denials-body").replaceChildren();
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

function drawBars(svg, series) {
  const most = Math.max(1, ...series.map((b) => b.count));
  const width = 300 / series.length;
  const bars = series.map((bucket, i) => {
    const height = (bucket.count / most) * 76;
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    bar.setAttribute("x", String(i * width + 0.5));
    bar.setAttribute("y", String(78 - height));
    bar.setAttribute("width", String(Math.max(0.5, width - 1)));
    bar.setAttribute("height", String(height));
    bar.setAttribute("class", "chart-bar");
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${formatTime(bucket.start)}: ${bucket.count}`;
    bar.append(title);
    return bar;
  });
  svg.replaceChildren(...bars);
}

async function renderUsage() {
  const usage = await api(`/api/admin/usage?window=${$("usage-window").value}`);
  $("usage-total").textContent = `${usage.total} requests in the ${usage.window === "24h" ? "last 24 hours" : "last 30 days"}`;
  drawBars($("usage-chart"), usage.series);
  $("top-keys").replaceChildren(...usage.top.map((top) => {
    const item = el("li");
    item.append(keyLink(`${top.name} (${top.prefix})`, top.key_id), document.createTextNode(`: ${top.count}`));
    return item;
  }));
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

async function refresh() {
  try {
    const { keys } = await api("/api/admin/keys?limit=1000");
    state.keys = keys;
    const scopeFilter = $("scope-filter");
    const chosen = scopeFilter.value;
    scopeFilter.replaceChildren(el("option", "any", { value: "" }), ...state.tools.map((t) => el("option", t)));
    scopeFilter.value = chosen;
    renderKeys();
    await renderUsage();
    await renderDenials();
  } catch (error) {
    if (state.token) say(`Could not load: ${error.message}`, true);
  }
}

// --- one key: detail, edit, rotate, revoke ---------------------------------------------------

function scopeBoxes(fieldset, chosen) {
  const legend = fieldset.querySelector("legend");
  const boxes = ["*", ...state.tools].map((tool) => {
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
  drawBars($("key-chart"), usage.series);
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

async function start() {
  const config = await (await fetch("/admin/config.json")).json();
  state.tools = config.tools;
  $("sso").hidden = !config.sso;
  wire();
  const returned = new URLSearchParams(location.hash.slice(1));
  if (location.hash) history.replaceState(null, "", location.pathname);  // a one-time handle leaves the address bar at once
  const handle = returned.get("signin");
  if (handle) {
    const response = await fetch("/admin/oidc/redeem", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ handle }), credentials: "omit" });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      await signIn(body.access_token, `Signed in as ${body.name}`);
    } else {
      say(`Single sign-on failed: ${body.detail || response.status}`, true);
    }
  }
  if (returned.get("error")) say(`Single sign-on failed: ${returned.get("error")}`, true);
}

start();
