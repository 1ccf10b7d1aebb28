// Prints, as a JSON list, the canonical request npm atlassian-jwt (the library ACE verifies
// Connect JWTs with) computes for each GET URL of the JSON list on stdin.
// Usage: node canonical.js NODE_MODULES < urls.json
const jwt = require(process.argv[2] + '/atlassian-jwt');
const urls = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const canonical = urls.map((url) => jwt.createCanonicalRequest(jwt.fromMethodAndUrl('GET', url), false, ''));
process.stdout.write(JSON.stringify(canonical));
