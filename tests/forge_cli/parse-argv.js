#!/usr/bin/env node
// Parse Forge CLI argvs with the real @forge/cli 13.3.0 command definitions, without running
// any command: the test peer for "every argv the forge registrar runs is accepted by the real
// option parser" (tests/forge_cli/argv.py drives it).
//
//   node parse-argv.js -- install --site x.atlassian.net --product jira -e development
//   echo '[["deploy","-e","development"],["install","--sitee","x"]]' | node parse-argv.js
//
// Prints one JSON value on stdout: {argv, ok, error, stage, command, options} for one argv after
// "--", or a list of them for a JSON list of argvs on stdin. `stage` says who refused: "parser"
// (commander: unknown option or command, a missing option value) or "argv-check" (the checks
// the real CLI makes on the argv alone before it needs a login, a manifest or the network:
// `--non-interactive` without its required options, an invalid --site/--product/-e value, a bad
// `--upgrade` target or `--major-version`). Everything the CLI itself would print goes to stderr.
//
// How: the CLI's own `registerCommands` builds the program on its own dependency graph; the
// wrapper class's `action` is replaced before that, so every command's action only records what
// commander parsed. The analytics worker the CLI spawns on start-up is not started, and
// FORGE_DISABLE_ANALYTICS keeps Sentry off; the caller gives the process a temporary HOME.
'use strict';

process.env.FORGE_DISABLE_ANALYTICS = process.env.FORGE_DISABLE_ANALYTICS || '1';

// Nothing but our JSON may reach stdout.
for (const name of ['log', 'info', 'warn', 'error', 'debug']) {
  console[name] = (...args) => process.stderr.write(args.join(' ') + '\n');
}

const workers = require('@forge/cli/out/workers/workers-starter');
workers.WorkersStarter = class {
  isExited() {
    return false;
  }
};

const { Text } = require('@forge/cli-shared');
const forgeCommand = require('@forge/cli/out/command-line/command');
const { getDependencies } = require('@forge/cli/out/command-line/dependency-injection');
const { registerCommands } = require('@forge/cli/out/command-line');
const { getCLIDetails } = require('@forge/cli/out/command-line/version-info');
const { checkEnvironmentOption } = require('@forge/cli/out/command-line/environment');
const { parseMajorVersion } = require('@forge/cli/out/command-line/register-deployment-commands');

const ForgeCommand = forgeCommand.Command;
let deps = null;
let recorded = null;

function commandPath(command) {
  const names = [];
  for (let c = command; c && c.parent; c = c.parent) {
    names.unshift(c.name());
  }
  return names.join(' ');
}

function removeErrorPrefix(message) {
  return message.startsWith('error: ') ? message.slice('error: '.length) : message;
}

// The refusals `Command.actionProcessor`, the preconditions and the first lines of the actions
// make from the argv alone, in the order the real CLI makes them.
function argvCheck(wrapper, command, options) {
  if (options.nonInteractive && !wrapper.satisfiesNonInteractiveOptions(options)) {
    return Text.nonInteractive.error.missingRequiredOption(command.name(), wrapper.requiredOptionFlags);
  }
  if (typeof options.environment === 'string') {
    checkEnvironmentOption(options.environment);
  }
  const hasContext = command.options.some((o) => o.long === '--site');
  if (hasContext) {
    forgeCommand.validateContext({
      supportedProductsService: deps.services.supportedProductsService,
      site: options.site,
      product: options.product
    });
  }
  const path = commandPath(command);
  if (path === 'deploy' && options.majorVersion) {
    parseMajorVersion(options.majorVersion);
  }
  if (path === 'install') {
    deps.controllers.installController.validateUpgradeTarget(options.upgrade);
  }
  return null;
}

ForgeCommand.prototype.action = function action() {
  const wrapper = this;
  this.cmd.action((...args) => {
    const command = args.pop();
    const options = { ...args[args.length - 1] };
    recorded = { command: commandPath(command), options, error: null, stage: null };
    try {
      const problem = argvCheck(wrapper, command, options);
      if (problem) {
        recorded.error = problem;
        recorded.stage = 'argv-check';
      }
    } catch (error) {
      recorded.error = removeErrorPrefix(error.message);
      recorded.stage = 'argv-check';
    }
  });
  return this;
};

function silence(command) {
  command.configureOutput({ writeOut: () => {}, writeErr: () => {} });
  command.commands.forEach(silence);
}

async function parse(argv) {
  const full = ['node', 'forge', ...argv];
  recorded = null;
  const result = { argv, ok: true, error: null, stage: null, command: null, options: null };
  try {
    deps.cmd.assertValidArgs(full);
    await deps.cmd.cmd.parseAsync(full);
  } catch (error) {
    result.ok = false;
    result.stage = 'parser';
    if (ForgeCommand.isHelpTriggered(error)) {
      // `--help` is fine; help shown because no command was given is the CLI's usage error.
      result.ok = !ForgeCommand.isError(error);
      result.error = result.ok ? null : 'no command given: the CLI shows its help and exits 1';
      result.command = 'help';
    } else if (ForgeCommand.isVersionTriggered(error)) {
      result.ok = true;
      result.command = 'version';
    } else if (ForgeCommand.isUnknownCommand(error) || ForgeCommand.isExcessCommands(error)) {
      const { index } = deps.cmd.findLastValidCommand(full);
      result.error = Text.invalidCmd(full.slice(2, index + 2).join(' '));
    } else {
      result.error = removeErrorPrefix(error.message);
    }
    if (result.ok) {
      result.stage = null;
    }
    return result;
  }
  if (recorded === null) {
    result.ok = false;
    result.stage = 'parser';
    result.error = 'no command ran';
    return result;
  }
  result.command = recorded.command;
  result.options = recorded.options;
  if (recorded.error) {
    result.ok = false;
    result.error = recorded.error;
    result.stage = recorded.stage;
  }
  return result;
}

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function main() {
  const separator = process.argv.indexOf('--');
  const single = separator >= 0 ? process.argv.slice(separator + 1) : null;
  const argvs = single === null ? JSON.parse(await readStdin()) : [single];
  if (!Array.isArray(argvs) || !argvs.every((a) => Array.isArray(a) && a.every((s) => typeof s === 'string'))) {
    throw new Error('stdin must be a JSON list of argvs (lists of strings)');
  }
  deps = await getDependencies(getCLIDetails());
  await registerCommands(deps);
  silence(deps.cmd.cmd);
  const results = [];
  for (const argv of argvs) {
    results.push(await parse(argv));
  }
  const output = JSON.stringify(single === null ? results : results[0]) + '\n';
  process.stdout.write(output, () => process.exit(0));
}

main().catch((error) => {
  process.stderr.write(`parse-argv.js failed: ${error && error.stack ? error.stack : error}\n`);
  process.exit(2);
});
