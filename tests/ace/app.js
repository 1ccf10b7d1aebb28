// The ACE peer: a real atlassian-connect-express 11.5.3 app, as its own template builds one.
// Started by tests/test_ace.py with NODE_PATH pointing at the installed packages and the working
// directory holding atlassian-connect.json. Prints JSON lines the test waits for on stdout.
"use strict";

const path = require("path");
const express = require("express");
const _ = require("lodash");
const ace = require("atlassian-connect-express");
const { MemoryStore } = require(path.join(__dirname, "memory-store.js"));

ace.store.register("memory", () => new MemoryStore());

const say = message => console.log(JSON.stringify(message));
const app = express();
app.use(express.json());
app.use(express.urlencoded({ extended: false }));

const addon = ace(app, {
  config: {
    development: {
      localBaseUrl: process.env.AC_LOCAL_BASE_URL,
      store: { adapter: "memory" },
      watch: false,
      product: "jira"
    }
  }
});
app.use(addon.middleware());

addon.on("host_settings_saved", clientKey => say({ event: "tenant_saved", clientKey }));

// A page the host loads in an iframe: ACE checks the HS256 JWT and its qsh.
app.get("/hello", addon.authenticate(), (req, res) => {
  res.json({ hello: "from ACE", clientKey: req.context.clientKey, query: req.query });
});

// The traffic inspector's replays (tests/test_inspector_ace.py): a JSON POST behind
// addon.authenticate(), answered with what ACE read of it.
app.post("/echo", addon.authenticate(), (req, res) => {
  res.json({ clientKey: req.context.clientKey, query: req.query, body: req.body });
});

// ACE sets up POST /installed itself; uninstalled is the app's to verify (RS256, as installed).
app.post("/uninstalled", addon.authenticateInstall(), async (req, res) => {
  await addon.settings.del("clientInfo", req.body.clientKey);
  say({ event: "tenant_deleted", clientKey: req.body.clientKey });
  res.sendStatus(204);
});

// A page the emulated site frames (tests/test_browser.py), as ACE's templates build one: the
// site's all.js from hostScriptUrl (AC_HOST_SCRIPT_URL), its stylesheet, the content in
// .ac-content.
app.get("/browser/page", addon.authenticate(), (req, res) => {
  const { hostScriptUrl, hostStylesheetUrl, clientKey } = req.context;
  res.send(
    "<!doctype html><html><head>" +
      `<link rel="stylesheet" href="${_.escape(hostStylesheetUrl)}">` +
      `<script src="${_.escape(hostScriptUrl)}"></script></head><body>` +
      '<div class="ac-content"><h1>Hello from ACE</h1>' +
      `<p id="client-key">${_.escape(clientKey)}</p>` +
      `<p id="query">${_.escape(JSON.stringify(req.query))}</p></div></body></html>`
  );
});

// What AP.context.getToken() gives a page is checked here, as ACE apps check it.
app.get("/browser/check-token", addon.checkValidToken(), (req, res) => {
  res.json({
    clientKey: req.context.clientKey,
    userAccountId: req.context.userAccountId,
    context: req.context.context
  });
});

// For the test only: which tenants ACE has stored (clientKeys, never secrets).
app.get("/_test/tenants", async (req, res) => {
  const infos = await addon.settings.getAllClientInfos();
  res.json(infos.map(info => info.clientKey));
});

// Webhooks (tests/test_host_webhooks.py). A route written by hand behind addon.authenticate(),
// as many apps do; it answers before the route ACE registers for the same webhook.
app.post("/webhooks/comment", addon.authenticate(), (req, res) => {
  say({
    event: "webhook",
    route: "authenticate",
    webhookEvent: req.body.webhookEvent,
    issueKey: req.body.issue && req.body.issue.key,
    clientKey: req.context.clientKey,
    query: req.query
  });
  res.sendStatus(204);
});

// ACE's own way: it registers a route for each webhook in the descriptor (authenticated as
// above) and emits the event to the app.
addon.on("jira:issue_created", (event, body, req) => {
  say({
    event: "webhook",
    route: "ace",
    webhookEvent: body.webhookEvent,
    issueKey: body.issue && body.issue.key,
    clientKey: req.context.clientKey,
    query: req.query
  });
});

// Lifecycle webhooks (tests/test_host_install_cases.py): HS256-signed with the tenant's secret.
for (const lifecycle of ["enabled", "disabled"]) {
  app.post(`/${lifecycle}`, addon.authenticate(), (req, res) => {
    say({ event: lifecycle, clientKey: req.context.clientKey, eventType: req.body.eventType });
    res.sendStatus(204);
  });
}

// For the test only: lose a stored tenant, as an app whose database was wiped.
app.post("/_test/forget", async (req, res) => {
  await addon.settings.del("clientInfo", req.body.clientKey);
  say({ event: "tenant_forgotten", clientKey: req.body.clientKey });
  res.sendStatus(204);
});

// The emulated site's REST API as the tenant (tests/test_host_rest.py): ACE's httpClient signs
// the call with the tenant's sharedSecret (iss = the app key, aud = [clientKey], qsh over the
// path relative to the product's base URL) and the test gets what the site answered.
// `tamper: "query"` adds a parameter after ACE signed the call, as a proxy rewriting URLs would.
app.post("/_test/call-site", async (req, res) => {
  const { clientKey, method = "get", url, body, tamper } = req.body;
  const options = { url, headers: { Accept: "application/json" } };
  options.json = body === undefined ? true : body;
  const client = addon.httpClient({ clientKey });
  const sending = client[method === "delete" ? "del" : method](options, (err, response, answer) => {
    if (err) {
      res.status(502).json({ error: String(err) });
      return;
    }
    res.json({ status: response.statusCode, body: answer === undefined ? null : answer });
  });
  if (tamper === "query") {
    // ACE's promise gives the request before it is sent (request sends on setImmediate).
    const request = await sending;
    request.path += (request.path.includes("?") ? "&" : "?") + "tampered=1";
  }
});

const server = app.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  say({ event: "listening", port: server.address().port });
});
