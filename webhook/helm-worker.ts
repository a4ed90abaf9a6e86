// The worker thread behind HelmChecker (helm-check.ts): checks Helm release records off the event loop. The
// config comes once, as workerData; each message is one record and the issuer as it stands.
import { parentPort, workerData } from 'node:worker_threads';
import type { Config } from './config.ts';
import { checkHelmRelease } from './helm-release.ts';
import type { IssuerInfo } from './rules.ts';

const config = (workerData as { config: Config }).config;

parentPort?.on('message', (m: { id: number; obj: unknown; issuer: IssuerInfo }) => {
  // checkHelmRelease never throws; a crash or an out-of-memory ends the worker, which the checker reports
  parentPort!.postMessage({ id: m.id, result: checkHelmRelease(m.obj, { config, issuer: m.issuer }) });
});
