// Attach an artifact to an image with @sigstore/oci, as sigstore-js does for
// npm provenance.  Driven by tests/clients/test_npm.py.
//
//   node sigstore-attach.js <registry host:port> <repository> <image digest> <media type> <artifact file> [tag]
//
// Prints one JSON line: {"descriptor": <the artifact manifest's descriptor>,
// "resolved": <getImageDigest of the tag, or of the digest when no tag is given>}.
'use strict';

const fs = require('node:fs');
const { attachArtifactToImage, getImageDigest } = require('@sigstore/oci');

async function main() {
  const [registry, repository, imageDigest, mediaType, artifactPath, imageTag] = process.argv.slice(2);
  const imageName = `${registry}/${repository}`;
  // @sigstore/oci speaks plain http to 127.0.0.1 and localhost, https elsewhere.
  const descriptor = await attachArtifactToImage({
    imageName,
    imageDigest,
    mediaType,
    artifact: fs.readFileSync(artifactPath),
    annotations: { 'org.example.test': 'txoci' },
    // No credentials: txoci has no auth, and signIn() would want a challenge.
  });
  // The library's other call: a HEAD that reads Docker-Content-Digest.
  const resolved = await getImageDigest({ imageName, imageTag: imageTag || imageDigest });
  process.stdout.write(JSON.stringify({ descriptor, resolved }) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n${err.cause ? `cause: ${err.cause.stack || err.cause}\n` : ''}`);
  process.exit(1);
});
