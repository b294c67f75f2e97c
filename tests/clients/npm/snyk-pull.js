// Read from a registry with @snyk/docker-registry-v2-client (what the Snyk
// CLI uses to scan images).  Driven by tests/clients/test_npm.py.
//
//   node snyk-pull.js <registry host:port>  < calls.json
//
// calls.json is a list of {"call": <library function>, ...arguments by name};
// the output is one JSON line: a list of {"result": ...} or {"error":
// {"statusCode", "message"}} in the same order, each with "requests", the
// paths the library asked for (so the tests can count pages).
'use strict';

const http = require('node:http');
const registry = require('@snyk/docker-registry-v2-client');

// Every call goes over plain http (the library's default is https).
const OPTIONS = { protocol: 'http:' };

let requests = [];
const originalRequest = http.request;
http.request = function (options, ...rest) {
  requests.push(`${(options.method || 'GET').toUpperCase()} ${options.path}`);
  return originalRequest.call(this, options, ...rest);
};

function options(call) {
  const result = { ...OPTIONS };
  if (call.acceptManifest !== undefined) result.acceptManifest = call.acceptManifest;
  return result;
}

async function run(base, call) {
  // Credentials are undefined: txoci has no auth.
  switch (call.call) {
    case 'checkSupport': {
      const response = await registry.checkSupport(base, undefined, undefined, options(call));
      return { statusCode: response.statusCode, apiVersion: response.headers['docker-distribution-api-version'] };
    }
    case 'getManifest':
      return registry.getManifest(base, call.repo, call.reference, undefined, undefined, options(call),
        call.platform);
    case 'getImageConfig':
      return registry.getImageConfig(base, call.repo, call.digest, undefined, undefined, options(call));
    case 'getLayer': {
      const buffer = await registry.getLayer(base, call.repo, call.digest, undefined, undefined,
        options(call));
      return { base64: buffer.toString('base64') };
    }
    case 'downloadLayer': {
      await registry.downloadLayer(call.output, base, call.repo, call.digest, undefined, undefined,
        options(call));
      return { output: call.output };
    }
    case 'getImageSize':
      return registry.getImageSize(base, call.repo, call.reference, undefined, undefined, options(call));
    case 'getTags':
      return registry.getTags(base, call.repo, undefined, undefined, call.pageSize, call.maxPages,
        options(call));
    case 'getTagsPaginated':
      return registry.getTagsPaginated(base, call.repo, undefined, undefined, call.pageSize, options(call));
    case 'getRepos':
      return registry.getRepos(base, undefined, undefined, call.pageSize, call.maxPages, options(call));
    default:
      throw new Error(`unknown call ${call.call}`);
  }
}

async function main() {
  const base = process.argv[2];
  const calls = JSON.parse(require('node:fs').readFileSync(0, 'utf8'));
  const results = [];
  for (const call of calls) {
    requests = [];
    try {
      const result = await run(base, call);
      results.push({ result, requests });
    } catch (err) {
      results.push({ error: { statusCode: err.statusCode, message: String(err.message) }, requests });
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
