// Runs one paced (open-loop) load in a process of its own and prints its LoadResult as one JSON line.
// bench/run.ts uses it for the fixed-rate runs, so the generator's event loop and heap start clean instead
// of carrying whatever the earlier autocannon runs left in the bench process (a pause there is counted as
// webhook latency by an open-loop generator).
//   node bench/paced-child.ts OPTIONS.json     OPTIONS: {port, requests: [{path, body}], rate, seconds, warmupSeconds, connections}
import { readFileSync } from 'node:fs';
import { paced } from './run.ts';
import type { PacedRequest } from './run.ts';

const o = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as {
  port: number;
  requests: PacedRequest[];
  rate: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
};
if (o.warmupSeconds > 0) await paced({ ...o, seconds: o.warmupSeconds, latencies: false });
const r = await paced(o);
process.stdout.write(`${JSON.stringify(r)}\n`);
