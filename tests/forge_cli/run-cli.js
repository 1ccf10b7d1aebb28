#!/usr/bin/env node
// Run the real @forge/cli 13.3.0 on an argv (`node run-cli.js ARGS...`), as `forge ARGS...`
// would, for the refusals it makes offline, before it needs a login or the network; the tests
// compare its output with the stand-in's. Only difference from `forge`: the analytics worker
// process the CLI spawns detached on start-up is not started.
'use strict';

const workers = require('@forge/cli/out/workers/workers-starter');
workers.WorkersStarter = class {
  isExited() {
    return false;
  }
};
process.argv = [process.argv[0], 'forge', ...process.argv.slice(2)];
require('@forge/cli/out/bin/cli.js');
