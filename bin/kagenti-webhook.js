#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build` (run by `prepare` on `npm ci`).
// An older Node than package.json's engines fails in odd places (X509Certificate.validToDate is Node 22.10+):
// say so first, in one line.
const MIN_NODE = [22, 19];
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < MIN_NODE[0] || (major === MIN_NODE[0] && minor < MIN_NODE[1])) {
  process.stderr.write(
    `kagenti-webhook: needs Node.js ${MIN_NODE.join('.')} or later (24 LTS recommended); this is Node.js ${process.versions.node}. ` +
      'Fix: run it with a newer node (npm scripts use the one the node devDependency installs: npx node, or npm start).\n',
  );
  process.exit(2);
}
const { main } = await import('../dist/cli.js');

main(process.argv.slice(2)).then(
  (code) => {
    if (typeof code === 'number') process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`kagenti-webhook: ${err && err.message ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
