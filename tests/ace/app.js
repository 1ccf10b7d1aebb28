// The ACE peer: a real atlassian-connect-express 11.5.3 app, as its own template builds one.
// Started by tests/test_ace.py with NODE_PATH pointing at the installed packages and the working
// directory holding atlassian-connect.json. Prints JSON lines the test waits for on stdout.
"use strict";

const path = require("path");
const express = require("express");
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

// ACE sets up POST /installed itself; uninstalled is the app's to verify (RS256, as installed).
app.post("/uninstalled", addon.authenticateInstall(), async (req, res) => {
  await addon.settings.del("clientInfo", req.body.clientKey);
  say({ event: "tenant_deleted", clientKey: req.body.clientKey });
  res.sendStatus(204);
});

// For the test only: which tenants ACE has stored (clientKeys, never secrets).
app.get("/_test/tenants", async (req, res) => {
  const infos = await addon.settings.getAllClientInfos();
  res.json(infos.map(info => info.clientKey));
});

const server = app.listen(0, "127.0.0.1", () => {
  say({ event: "listening", port: server.address().port });
});
