// The child process behind HelmChecker (helm-check.ts): checks Helm release records off the server's event loop,
// one at a time. The first message is the config (answered with { ready: true }: this process has loaded its modules
// and can check); each later one is a record and the issuer as it stands.
import type { Config } from './config.ts';
import { checkHelmRelease } from './helm-release.ts';
import type { IssuerInfo } from './rules.ts';

let config: Config | undefined;

process.on('message', (m: { config?: Config; id?: number; obj?: unknown; issuer?: IssuerInfo }) => {
  if (m.config) {
    config = m.config;
    process.send!({ ready: true });
    return;
  }
  // checkHelmRelease never throws; out of memory ends this process, which the checker reports
  process.send!({ id: m.id, result: checkHelmRelease(m.obj, { config: config!, issuer: m.issuer! }) });
});
// the server went away (or stopped this child): nothing is left to check
process.on('disconnect', () => process.exit(0));
