// The real @forge/manifest, driven from the tests: `node forge.js NODE_MODULES COMMAND ARGS...`
// prints one JSON document on stdout.
//   facts              what connect-devloop's tables copy: module types, required fields, scopes...
//   validate FILE...   FULL validation of each file, as `forge lint` and `forge deploy` run it
//   interpolate FILE   the manifest after the ${VARIABLE} interpolation `forge deploy` applies
// The validators read ${VARIABLES} from this process's environment (the tests set it).
'use strict';

const fs = require('fs');
const path = require('path');

const [nodeModules, command, ...args] = process.argv.slice(2);
const root = path.join(nodeModules, '@forge', 'manifest');
// Required by path: the package's "exports" field hides out/ from bare specifiers.
const manifest = require(root);
const moduleTypes = require(path.join(root, 'out', 'types', 'module-types.js'));
const schema = require(path.join(root, 'out', 'schema', 'manifest-schema.json'));
const shipyardScopes = require(path.join(root, 'out', 'scopes', 'shipyard-scopes.json'));

function definition(ref) {
  return ref.slice(2).split('/').reduce((node, part) => node[part], schema);
}

// A schema node with its $ref followed.
function resolve(node) {
  return node.$ref ? resolve(definition(node.$ref)) : node;
}

function facts() {
  const modules = resolve(schema.properties.modules).properties;
  const required = {};
  for (const [name, body] of Object.entries(modules)) {
    if (name.startsWith('connect-')) {
      required[name.replace(/^connect-/, '')] = body.items.required;
    }
  }
  const app = resolve(schema.properties.app);
  const remotes = resolve(schema.properties.remotes);
  const baseUrl = remotes.items.properties.baseUrl.oneOf[1];
  return {
    version: require(path.join(root, 'package.json')).version,
    supportedModules: moduleTypes.SUPPORTED_MODULES,
    requiredFields: required,
    moduleKeyPattern: definition('#/definitions/ModuleKeySchema').pattern,
    connectScopes: shipyardScopes.filter((scope) => /:connect-/.test(scope)),
    topLevelKeys: Object.keys(schema.properties),
    requiredTopLevelKeys: schema.required,
    appKeys: Object.keys(app.properties),
    requiredAppKeys: app.required,
    appIdPattern: app.properties.id.pattern,
    runtimes: app.properties.runtime.properties.name.enum,
    connect: app.properties.connect,
    remoteKeys: Object.keys(remotes.items.properties),
    remoteKey: remotes.items.properties.key,
    regions: baseUrl.propertyNames.enum,
    variablePattern: resolve(
      resolve(schema.properties.environment).properties.variables.items.oneOf[0]
    ).pattern,
  };
}

async function validate(files) {
  const processor = manifest.ProcessorBuilder.instance()
    .withValidation(manifest.ValidationTypes.FULL)
    .build();
  const results = [];
  for (const file of files) {
    const result = await processor.process(path.resolve(file));
    results.push({
      file,
      success: result.success,
      errors: (result.errors || []).map(({ message, level, line, column }) => ({
        message,
        level,
        line,
        column,
      })),
    });
  }
  return results;
}

function interpolate(file) {
  const content = fs.readFileSync(file, 'utf8');
  try {
    const parsed = new manifest.ManifestParserBuilder()
      .withInterpolators()
      .build()
      .parseManifest({ content, filePath: path.resolve(file) });
    return { manifest: parsed };
  } catch (error) {
    return { error: error.message };
  }
}

(async () => {
  let output;
  if (command === 'facts') output = facts();
  else if (command === 'validate') output = await validate(args);
  else if (command === 'interpolate') output = interpolate(args[0]);
  else throw new Error(`unknown command ${command}`);
  process.stdout.write(JSON.stringify(output) + '\n');
})().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(2);
});
