// `node validate.js NODE_MODULES < file.har`: validates the HAR document on stdin against the
// HAR 1.2 schema with the real har-validator; exits 1 with ajv's errors on stderr when invalid.
'use strict';

const path = require('path');

const validator = require(path.join(process.argv[2], 'har-validator'));

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (piece) => { input += piece; });
process.stdin.on('end', () => {
  validator.har(JSON.parse(input)).then(
    () => process.stdout.write('valid\n'),
    (error) => {
      process.stderr.write(`${error.message}\n${JSON.stringify(error.errors, null, 2)}\n`);
      process.exit(1);
    },
  );
});
