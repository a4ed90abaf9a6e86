// `kagenti-webhook serve`: flags and start-up. Every start-up problem is one line on stderr and exit code 2.
import type https from 'node:https';
import { setFlagsFromString } from 'node:v8';
import { ConfigError, loadConfig } from './config.ts';
import { deepFreeze } from './json.ts';
import { createLogger } from './log.ts';
import type { Logger } from './log.ts';
import { buildInfo, unhandledRejections } from './metrics.ts';
import { REVISION, VERSION } from './version.ts';
import { DEFAULT_MAX_CONNECTIONS, DEFAULT_QUIET_MS, startServer } from './server.ts';
import { intFlag, parseFlags, UsageError } from './usage.ts';
import { startValidation } from './validation.ts';
import { errField } from './log-fields.ts';

export const SERVE_USAGE = `Usage: kagenti-webhook serve [flags]

Runs the admission webhook: HTTPS POST /mutate and /validate, GET /healthz and /readyz on --port;
plain HTTP /healthz, /readyz and /metrics on --probe-port.

Flags:
  --config FILE         config file (YAML); defaults apply to every key not set
  --tls-cert FILE       serving certificate (PEM); reloaded when the file changes
  --tls-key FILE        private key (PEM) of the serving certificate
  --dev-certs DIR       generate a CA and a serving certificate in DIR when missing (a CA already
                        in DIR signs it, never replaced), and use them
  --client-ca FILE      require client certificates signed by this CA (the API server's)
  --port N              HTTPS port (default 9443; 0 picks a free port)
  --probe-port N        plain-HTTP probe and metrics port (default 8080; 0 picks a free port)
  --host ADDR           address to listen on (default 0.0.0.0)
  --cluster auto|none   cluster state: auto uses KUBECONFIG, ~/.kube/config or the in-cluster
                        service account when one exists; none runs without (default auto)
  --drain-seconds N     on SIGTERM, keep serving this long while endpoints update (default 5)
  --max-connections N   open connections on --port at most (default 2000); at the cap a new connection
                        closes the one idle longest, and a connection that sends no request header within
                        --quiet-seconds of connecting is closed
  --quiet-seconds N     see --max-connections (default 5; at most 9, under the 10 s request-header timeout)
  --log-level LEVEL     trace, debug, info, warn, error (default: the LOG_LEVEL environment variable, else info)
  --warmup N            before listening, run N synthetic admissions in-process so the JIT compiles
                        the hot path before the first real request (default 20000, at most 3 s; 0 skips)
  -h, --help            show this help
`;

export interface ServeFlags {
  config?: string;
  tlsCert?: string;
  tlsKey?: string;
  devCerts?: string;
  clientCa?: string;
  port: number;
  probePort: number;
  host: string;
  cluster: 'auto' | 'none';
  drainSeconds: number;
  maxConnections: number;
  quietSeconds: number;
  logLevel: string;
  warmup: number;
}

export function parseServeFlags(argv: string[]): ServeFlags | 'help' {
  const values = parseFlags('serve', argv, {
    config: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'dev-certs': { type: 'string' },
    'client-ca': { type: 'string' },
    port: { type: 'string' },
    'probe-port': { type: 'string' },
    host: { type: 'string' },
    cluster: { type: 'string' },
    'drain-seconds': { type: 'string' },
    'max-connections': { type: 'string' },
    'quiet-seconds': { type: 'string' },
    'log-level': { type: 'string' },
    warmup: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help) return 'help';
  const cluster = (values.cluster as string | undefined) ?? 'auto';
  if (cluster !== 'auto' && cluster !== 'none') throw new UsageError(`--cluster must be auto or none, got ${JSON.stringify(cluster)}`);
  // the flag, else the LOG_LEVEL environment variable; a bad value is blamed on where it came from
  const levelFrom = values['log-level'] !== undefined ? '--log-level' : process.env.LOG_LEVEL !== undefined ? 'the LOG_LEVEL environment variable' : '';
  const logLevel = (values['log-level'] as string | undefined) ?? process.env.LOG_LEVEL ?? 'info';
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel))
    throw new UsageError(`${levelFrom} must be one of trace, debug, info, warn, error, got ${JSON.stringify(logLevel)}`);
  // `--config "$CFG"` with CFG unset must not fall back to the defaults without a word
  if (values.config === '') throw new UsageError('--config needs a file (it was given an empty value)');
  const f: ServeFlags = {
    config: values.config as string | undefined,
    tlsCert: values['tls-cert'] as string | undefined,
    tlsKey: values['tls-key'] as string | undefined,
    devCerts: values['dev-certs'] as string | undefined,
    clientCa: values['client-ca'] as string | undefined,
    port: intFlag('port', values.port as string | undefined, 9443),
    probePort: intFlag('probe-port', values['probe-port'] as string | undefined, 8080),
    host: (values.host as string | undefined) ?? '0.0.0.0',
    cluster,
    drainSeconds: intFlag('drain-seconds', values['drain-seconds'] as string | undefined, 5, 0, 600),
    maxConnections: intFlag('max-connections', values['max-connections'] as string | undefined, DEFAULT_MAX_CONNECTIONS, 1, 1_000_000),
    // below the 10 s headersTimeout, so quiet connections are closed a few at a time rather than by Node's sweep
    quietSeconds: intFlag('quiet-seconds', values['quiet-seconds'] as string | undefined, DEFAULT_QUIET_MS / 1000, 1, 9),
    logLevel,
    warmup: intFlag('warmup', values.warmup as string | undefined, 20_000, 0, 1_000_000),
  };
  if (f.devCerts !== undefined && (f.tlsCert || f.tlsKey))
    throw new UsageError('--dev-certs cannot be combined with --tls-cert/--tls-key: pass one or the other');
  if (!f.devCerts && (!f.tlsCert || !f.tlsKey))
    throw new UsageError('no serving certificate: pass --tls-cert FILE and --tls-key FILE, or --dev-certs DIR');
  if (f.port !== 0 && f.port === f.probePort) throw new UsageError(`--port and --probe-port are both ${f.port}; they need different ports`);
  return f;
}

let guarded = false;

/**
 * A promise rejection that nothing handles is logged (one line, always the same message) and counted, and the
 * process keeps serving, where Node's default would end it with exit 1. Admissions never get here: they are answered
 * synchronously and fail closed on any error (internal-error). What can is background work (the informers, the
 * issuer re-check, the certificate reload), and for that, going on with the last known state is better than exiting:
 * every replica shares the cause (the same kubeconfig credentials, the same API server), so all would exit at once
 * and, with failurePolicy Fail, block every agent pod in the cluster, then crash-loop. What stopped shows: the cache
 * age grows and /readyz lists the informer errors. A synchronous uncaught exception still ends the process (state
 * may be half-updated there).
 */
export function keepServingOnUnhandledRejection(log: Logger): void {
  if (guarded) return;
  guarded = true;
  process.on('unhandledRejection', (reason) => {
    unhandledRejections.inc();
    // {type, message, stack}: the `err` of every line (log-fields.ts); a rejection that is not an Error has no stack
    log.error({ err: errField(reason, { stack: true }) }, 'unhandled promise rejection (a background task failed); the webhook keeps serving');
  });
}

export async function runServe(argv: string[]): Promise<number> {
  const flags = parseServeFlags(argv);
  if (flags === 'help') {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  // V8 moves allocations from sites whose objects often outlived a young-generation GC straight into the old
  // generation. A burst of connections that stay open (10,000 idle clients) taught it that about sites the
  // admission path shares, and afterwards the server ran a full GC every second (5-10 ms pauses, p99 at
  // 1,000 req/s from 3.5 to 8 ms) long after those connections were gone. An admission's objects live for
  // one request, so the server is better off without that heuristic; throughput is the same (BENCHMARKS.md).
  // Not allowed in NODE_OPTIONS, hence set here, before the warm-up and the first connection.
  setFlagsFromString('--no-allocation-site-pretenuring');
  let config;
  try {
    // Frozen: the injection core keeps what it renders per config object, so the config must not change under it.
    config = deepFreeze(loadConfig(flags.config));
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(`invalid config: ${err.message}`);
    throw err;
  }
  const log = createLogger(flags.logLevel);
  keepServingOnUnhandledRejection(log);

  let certFile = flags.tlsCert!;
  let keyFile = flags.tlsKey!;
  if (flags.devCerts !== undefined) {
    const { ensureDevCertificates } = await import('./certs.ts');
    let dev;
    try {
      dev = await ensureDevCertificates(flags.devCerts);
    } catch (err) {
      throw new UsageError(`--dev-certs ${flags.devCerts}: ${(err as Error).message.split('\n')[0]}`);
    }
    certFile = dev.certFile;
    keyFile = dev.keyFile;
    log.info({ dir: flags.devCerts, created: dev.created, ca: dev.caFile }, dev.created ? 'generated development certificates' : 'using development certificates');
  }
  const { CertificateReloader } = await import('./tls.ts');
  const reloader = new CertificateReloader({ certFile, keyFile, clientCaFile: flags.clientCa, log });
  try {
    reloader.load();
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]);
  }
  const tls: https.ServerOptions = reloader.serverOptions();

  const validation = await startValidation({ config, log, cluster: flags.cluster });
  if (flags.warmup > 0) {
    const { warmUp } = await import('./warmup.ts');
    const w = await warmUp({ config, validation, requests: flags.warmup, logLevel: flags.logLevel });
    log.info({ requests: w.requests, ms: w.ms }, 'warmed up the admission path');
    // synthetic admissions that failed with this config: real ones may fail the same way (denied as internal errors)
    if (w.failed)
      log.warn(
        { failed: w.failed, requests: w.requests, err: errField(w.firstError ?? 'unknown') },
        `warm-up: ${w.failed} of ${w.requests} synthetic admissions failed with this config (first: ${w.firstError}); real admissions of such pods may be denied as internal errors. Fix: check the config file (--config), or report this to the platform team`,
      );
  }
  let server;
  try {
    server = await startServer({
      config,
      log,
      validation,
      host: flags.host,
      port: flags.port,
      probePort: flags.probePort,
      tls,
      onHttpsServer: (s) => reloader.attach(s),
      maxConnections: flags.maxConnections,
      quietMs: flags.quietSeconds * 1000,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { port?: number; listener?: 'port' | 'probe-port' };
    await validation.close();
    reloader.close();
    const where = e.port === undefined ? flags.host : `${flags.host} port ${e.port}${e.listener === 'probe-port' || (!e.listener && e.port === flags.probePort) ? ' (--probe-port)' : ' (--port)'}`;
    throw new UsageError(`cannot listen on ${where}: ${e.code === 'EADDRINUSE' ? 'the port is in use' : e.message}`);
  }
  // the address bound: `::` falls back to 0.0.0.0 where the kernel has no IPv6
  const bound = server.https.address();
  const host = bound && typeof bound === 'object' ? bound.address : flags.host;
  buildInfo.set({ version: VERSION, revision: REVISION }, 1);
  log.info({ version: VERSION, revision: REVISION, port: server.port, probePort: server.probePort, host, cluster: flags.cluster }, 'listening');

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      server.setNotReady();
      log.info({ signal, drainSeconds: flags.drainSeconds }, 'shutting down: not ready; draining');
      await new Promise((r) => setTimeout(r, flags.drainSeconds * 1000));
      log.info({ inFlight: server.inFlight() }, 'closing listener; finishing in-flight admissions');
      await server.close(15_000);
      reloader.close();
      await validation.close();
      log.info('stopped');
      log.flush();
      resolve(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
    // Node's default for SIGHUP is to exit at once, cutting admissions in flight; operators send it expecting a
    // reload (under systemd, say). The certificate files are watched; the config is read at start only.
    process.on('SIGHUP', () =>
      log.warn({ signal: 'SIGHUP' }, 'SIGHUP ignored: the config is read at start only (restart to change it); the certificate files are reloaded when they change'),
    );
  });
}
