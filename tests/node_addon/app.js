// A tiny Atlassian Connect add-on in plain Node (its `http` module, no dependencies), run by
// `connect-dev up` through [addon] command in tests/test_addon_process.py: an add-on server
// that is not Python, supervised end to end.
//
// It listens on PORT, answers the lifecycle callbacks, reports what it was given at /env, and
// starts a child process that must not outlive it (connect-dev stops its whole process group).
"use strict";

const http = require("http");
const { spawn } = require("child_process");

const port = Number(process.env.PORT);
const baseUrl = process.env.CONNECT_DEV_BASE_URL;
const child = spawn("sleep", ["300"], { stdio: "ignore" });

const server = http.createServer((request, response) => {
  let body = "";
  request.on("data", (chunk) => {
    body += chunk;
  });
  request.on("end", () => {
    if (request.method === "POST" && ["/installed", "/uninstalled"].includes(request.url)) {
      const payload = JSON.parse(body || "{}");
      console.log(`lifecycle ${request.url} from ${payload.clientKey}`);
      response.writeHead(204);
      response.end();
      return;
    }
    console.error(`${request.method} ${request.url}`);
    const answer = {
      runtime: `node ${process.version}`,
      base_url: baseUrl,
      ac_local_base_url: process.env.AC_LOCAL_BASE_URL,
      port,
      pid: process.pid,
      child: child.pid,
    };
    response.writeHead(200, { "Content-Type": "application/json" });
    response.end(JSON.stringify(answer));
  });
});

server.listen(port, "127.0.0.1", () => {
  console.log(`node add-on listening on ${port} for ${baseUrl}`);
});

process.on("SIGTERM", () => {
  console.log("node add-on: SIGTERM, closing");
  server.close();
  process.exit(0);
});
