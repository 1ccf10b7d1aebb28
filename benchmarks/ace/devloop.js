// ACE's own dev loop, as an atlassian-connect-express 11.5.3 developer runs it: the app built as
// ACE's template builds one (`ace(app)`, `addon.middleware()`, `app.listen(addon.config.port())`,
// then `addon.register()` in development mode). ACE itself reads config.json and credentials.json
// from the working directory, watches atlassian-connect.json there (config `watch`, default on)
// and re-registers with every host on each change. Started by benchmarks/vs_ace.py with NODE_PATH
// pointing at the npm-installed packages and NODE_ENV=development. Prints JSON lines on stdout.
"use strict";

const path = require("path");
const express = require("express");
const ace = require("atlassian-connect-express");
const { MemoryStore } = require(path.join(__dirname, "..", "..", "tests", "ace", "memory-store.js"));

// ACE's default store (sequelize + sqlite3) needs a native build; the memory store is what
// ACE's own loop expects in development (registration is forced with a memory store).
ace.store.register("memory", () => new MemoryStore());

const say = message => console.log(JSON.stringify(message));
const app = express();
app.use(express.json());
app.use(express.urlencoded({ extended: false }));

const addon = ace(app);
app.use(addon.middleware());

addon.on("host_settings_saved", clientKey => say({ event: "tenant_saved", clientKey }));
addon.on("addon_registered", () => say({ event: "addon_registered" }));

const port = addon.config.port();
const server = app.listen(port, "127.0.0.1", () => {
  say({ event: "listening", port: server.address().port });
  if (app.get("env") === "development") {
    addon.register();
  }
});
