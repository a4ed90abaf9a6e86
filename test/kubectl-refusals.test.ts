// Input kubectl refuses that lint and inject read (each checked against kubectl 1.32 with
// `kubectl patch --local -f F --type json --patch-file <[]> -o json`): they refuse it too, exit 2, at its line and
// column; and what kubectl reads they keep reading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { defaultConfig } from '../webhook/config.ts';
import { Linter } from '../webhook/lint.ts';
import { readDocuments } from '../webhook/manifest-stream.ts';

const CM = (name: string, data = '') => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${data}`;

test('lint names the line of a byte that is not UTF-8, however far into the stream', async () => {
  for (const lines of [75, 40000]) {
    const text = Buffer.concat([Buffer.from(`${CM('a', 'data:\n')}${'  k: v\n'.repeat(lines - 5)}`), Buffer.from('  x: caf\xe9\n', 'latin1')]);
    const chunks = async function* () {
      for (let i = 0; i < text.length; i += 65536) yield text.subarray(i, i + 65536);
    };
    await assert.rejects(
      (async () => {
        for await (const _ of readDocuments(chunks())) void _;
      })(),
      (err: { line?: number }) => err.line === lines + 1,
    );
    const l = new Linter({ config: defaultConfig(), issuer: { classification: 'external' } });
    await l.lintStream('m.yaml', Readable.from([text]));
    assert.equal(l.problems[0]?.line, lines + 1);
  }
});
