// `npm run bench:lint`: generates the ~50,000-document / ~20 MB stream of agent Deployments, Services,
// ServiceAccounts and ConfigMaps (a few violating), then times, in the same process and run:
//   - js-yaml's bare parse of the stream (loadAll, no checks), the floor the issue measures against;
//   - our lint: UTF-8 decoding of 256 KiB chunks, document splitting, the fast parse, every rule, the
//     cross-document ServiceAccount index and positions for the documents that report something.
// Prints both times, the ratio (target: at most 2x) and the heap in use after each lint pass.
// Options: --documents N (default 50000), --rounds N (default 3; the best round of each is compared).
import { parseArgs } from 'node:util';
import jsyaml from 'js-yaml';
import { defaultConfig } from '../webhook/config.ts';
import { Linter } from '../webhook/lint.ts';
import { generateStream } from './lint-stream.ts';

const { values } = parseArgs({
  options: { documents: { type: 'string' }, rounds: { type: 'string' } },
  strict: true,
});
const documents = Number(values.documents ?? 50_000);
const rounds = Number(values.rounds ?? 3);

const text = generateStream({ documents });
const bytes = Buffer.from(text, 'utf8');
const CHUNK = 256 * 1024;

async function* chunks(): AsyncGenerator<Buffer> {
  for (let i = 0; i < bytes.length; i += CHUNK) yield bytes.subarray(i, i + CHUNK);
}

function jsyamlParse(): { ms: number; docs: number } {
  const t = performance.now();
  let docs = 0;
  // js-yaml reads the decoded string; decoding is not counted for it
  jsyaml.loadAll(text, (d) => {
    if (d !== null && d !== undefined) docs++;
  });
  return { ms: performance.now() - t, docs };
}

async function lint(): Promise<{ ms: number; docs: number; errors: number; warnings: number; heapMiB: number }> {
  const t = performance.now();
  const linter = new Linter({ config: defaultConfig(), issuer: { classification: 'external' } });
  await linter.lintStream('bench.yaml', chunks());
  const ms = performance.now() - t;
  if (linter.problems.length) throw new Error(`bench stream did not parse: ${linter.problems[0].message}`);
  const errors = linter.findings.filter((f) => f.severity === 'error').length;
  const heapMiB = process.memoryUsage().heapUsed / 1024 / 1024;
  return { ms, docs: linter.documents, errors, warnings: linter.findings.length - errors, heapMiB };
}

console.log(`stream: ${documents} documents, ${(bytes.length / 1e6).toFixed(1)} MB`);
let bestJs = Infinity;
let bestLint = Infinity;
for (let r = 1; r <= rounds; r++) {
  globalThis.gc?.();
  const js = jsyamlParse();
  globalThis.gc?.();
  const li = await lint();
  bestJs = Math.min(bestJs, js.ms);
  bestLint = Math.min(bestLint, li.ms);
  console.log(
    `round ${r}: js-yaml parse ${js.ms.toFixed(0)} ms (${js.docs} docs) | lint ${li.ms.toFixed(0)} ms ` +
      `(${li.docs} docs, ${li.errors} errors, ${li.warnings} warnings, heap ${li.heapMiB.toFixed(0)} MiB) | ratio ${(li.ms / js.ms).toFixed(2)}`,
  );
}
const ratio = bestLint / bestJs;
console.log(`best: js-yaml parse ${bestJs.toFixed(0)} ms, lint ${bestLint.toFixed(0)} ms, ratio ${ratio.toFixed(2)} (target <= 2.00)`);
if (ratio > 2) process.exitCode = 1;
