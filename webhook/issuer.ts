// Service-account issuer detection: is the cluster's token issuer external (EKS, GKE, AKS, other OIDC
// providers) or internal (the API server signs and serves its keys)? Feeds token-review-required.
import { readFile } from 'node:fs/promises';
import type { KubeConfig } from './kube-client.ts';
import type { Logger } from 'pino';
import type { Config } from './config.ts';
import { MAX_TIMER_SECONDS } from './config.ts';
import type { IssuerInfo } from './rules.ts';
import { Gauge, PREFIX, registry } from './metrics.ts';
import { errField } from './log-fields.ts';

export type { IssuerInfo };

// EKS in every partition (commercial, China, GovCloud, the ISO regions), GKE's regional and zonal forms, AKS in
// the public, China and US Government clouds.
const EKS = /^https:\/\/oidc\.eks\.[a-z0-9-]+\.(amazonaws\.com(\.cn)?|c2s\.ic\.gov|sc2s\.sgov\.gov)\/id\/[0-9a-f]{32}\/?$/i;
const GKE = /^https:\/\/container\.googleapis\.com\/v1\/projects\/[^/]+\/(locations|zones)\/[^/]+\/clusters\/[^/]+\/?$/;
const AKS = /^https:\/\/[a-z0-9-]+\.oic\.prod-aks\.azure\.(com|cn|us)\/[^/]+\/[^/]+\/?$/i;
const INTERNAL = /^https:\/\/kubernetes\.default\.svc(\.[a-z0-9-]+(\.[a-z0-9-]+)*)?(:443)?\/?$/i;

function hostOf(url: string | undefined): string | undefined {
  if (!url) return undefined;
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return undefined;
  }
}

/**
 * Classifies an issuer URL without fetching anything. EKS, GKE and AKS patterns are external;
 * `https://kubernetes.default.svc[.<domain>]` is internal; any other issuer is external when the host of
 * the discovery document's `jwks_uri` differs from the API server's host, internal when it is the same,
 * and unknown when either is missing.
 */
export function classifyIssuer(issuer: string, jwksUri?: string, apiServerUrl?: string): IssuerInfo {
  if (EKS.test(issuer)) return { classification: 'external', issuer, provider: 'EKS' };
  if (GKE.test(issuer)) return { classification: 'external', issuer, provider: 'GKE' };
  if (AKS.test(issuer)) return { classification: 'external', issuer, provider: 'AKS' };
  if (INTERNAL.test(issuer)) return { classification: 'internal', issuer };
  const jwksHost = hostOf(jwksUri);
  const apiHost = hostOf(apiServerUrl);
  if (!jwksHost || !apiHost) return { classification: 'unknown', issuer };
  return { classification: jwksHost === apiHost ? 'internal' : 'external', issuer };
}

/** The `iss` claim of a JWT, without verifying it (the token is our own, read from our own pod). */
export function jwtIssuer(token: string): string | undefined {
  const parts = token.trim().split('.');
  if (parts.length !== 3 || parts[1].length > 64 * 1024) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    if (typeof claims === 'object' && claims !== null && typeof (claims as { iss?: unknown }).iss === 'string') {
      const iss = (claims as { iss: string }).iss;
      return iss !== '' ? iss : undefined;
    }
  } catch {
    // not a JWT
  }
  return undefined;
}

const issuerInfo = new Gauge({
  name: `${PREFIX}service_account_issuer_info`,
  help: 'The cluster service-account issuer as detected (value 1): classification external|internal|unknown, provider EKS|GKE|AKS or "".',
  labelNames: ['classification', 'provider'] as const,
  registers: [registry],
});

export interface IssuerDetectorOptions {
  config: Config;
  log: Logger;
  /** null: no cluster connection (discovery cannot be fetched) */
  kubeConfig: KubeConfig | null;
  /** reads the token file; injectable for tests */
  readToken?: (path: string) => Promise<string>;
}

export interface IssuerState extends IssuerInfo {
  /** where the issuer came from: config, token, discovery, or none */
  source: 'config' | 'token' | 'discovery' | 'none';
  /** when the check that gave this state ran */
  checkedAt?: string;
  error?: string;
  /**
   * set while re-checks fail after a successful one: when the first of them ran. The classification is then
   * the last one a successful check gave, and `error` says why the latest re-check failed.
   */
  failingSince?: string;
}

/** Detects the issuer at start and every tokenReview.recheckSeconds; current() never blocks. */
export class IssuerDetector {
  private readonly opts: IssuerDetectorOptions;
  private state: IssuerState;
  /** the last state a successful check gave (external or internal), kept through failed re-checks */
  private lastGood: IssuerState | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(opts: IssuerDetectorOptions) {
    this.opts = opts;
    this.state = { classification: 'unknown', source: 'none' };
    const setting = opts.config.tokenReview.issuer;
    if (setting === 'external' || setting === 'internal')
      this.state = { classification: setting, source: 'config' };
    this.publish();
  }

  current(): IssuerInfo {
    const { classification, issuer, provider } = this.state;
    const out: IssuerInfo = { classification };
    if (issuer) out.issuer = issuer;
    if (provider) out.provider = provider;
    return out;
  }

  detail(): IssuerState {
    return { ...this.state };
  }

  private publish(): void {
    issuerInfo.reset();
    issuerInfo.set({ classification: this.state.classification, provider: this.state.provider ?? '' }, 1);
  }

  private async discovery(): Promise<{ issuer?: string; jwksUri?: string; error?: string }> {
    const kc = this.opts.kubeConfig;
    if (!kc) return { error: 'no cluster connection' };
    try {
      // loaded on demand: @kubernetes/client-node costs ~90 MB of RSS, needless without a cluster
      const { kubeGetJson } = await import('./cluster.ts');
      const doc = await kubeGetJson(kc, '/.well-known/openid-configuration', { maxBytes: 256 * 1024, timeoutMs: 5000 });
      const issuer = typeof doc?.issuer === 'string' ? doc.issuer : undefined;
      const jwksUri = typeof doc?.jwks_uri === 'string' ? doc.jwks_uri : undefined;
      return { issuer, jwksUri };
    } catch (err) {
      return { error: `GET /.well-known/openid-configuration: ${errField(err).message}` };
    }
  }

  /** Detects once; returns the new state. Never throws. */
  async refresh(): Promise<IssuerState> {
    const { config, log } = this.opts;
    const setting = config.tokenReview.issuer;
    const now = new Date().toISOString();
    let next: IssuerState;
    if (setting === 'external' || setting === 'internal') {
      next = { classification: setting, source: 'config', checkedAt: now };
    } else {
      let issuer: string | undefined;
      let source: IssuerState['source'] = 'none';
      const errors: string[] = [];
      if (setting !== 'auto') {
        issuer = setting;
        source = 'config';
      } else {
        const path = config.tokenReview.tokenPath;
        try {
          const text = await (this.opts.readToken ?? ((p: string) => readFile(p, 'utf8')))(path);
          issuer = jwtIssuer(text);
          if (issuer) source = 'token';
          else errors.push(`${path} holds no token with an iss claim`);
        } catch (err) {
          errors.push(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
        }
      }
      let info: IssuerInfo | undefined = issuer ? classifyIssuer(issuer) : undefined;
      if (!info || info.classification === 'unknown') {
        // the discovery document gives the issuer (when we have none) and jwks_uri (for the host rule)
        const d = await this.discovery();
        if (d.error) errors.push(d.error);
        if (!issuer && d.issuer) {
          issuer = d.issuer;
          source = 'discovery';
        }
        if (issuer) {
          const server = this.opts.kubeConfig?.getCurrentCluster()?.server;
          info = classifyIssuer(issuer, d.issuer === issuer ? d.jwksUri : undefined, server);
        }
      }
      next = { ...(info ?? { classification: 'unknown' }), source, checkedAt: now };
      if (next.classification === 'unknown' && errors.length) next.error = errors.join('; ');
    }
    const prev = this.state;
    // A check that ends in "unknown" because something could not be read (the token file, or the discovery GET:
    // a 5xx, a timeout, a 404) has learnt nothing about the issuer. After a successful check it keeps that
    // check's classification, so one API server hiccup does not turn token-review-required from an error into
    // a warning until the next re-check. Only a successful check changes it; before any, it is unknown.
    if (next.classification === 'unknown' && next.error !== undefined && this.lastGood) {
      const failingSince = prev.failingSince ?? now;
      this.state = { ...this.lastGood, error: next.error, failingSince };
      if (!prev.failingSince)
        log.warn(
          { issuer: this.lastGood.issuer ?? null, classification: this.lastGood.classification, provider: this.lastGood.provider ?? null, lastCheckedAt: this.lastGood.checkedAt, err: errField(next.error) },
          `service-account issuer re-check failed; keeping the last known classification (${this.lastGood.classification}) until a re-check succeeds`,
        );
      return { ...this.state };
    }
    this.state = next;
    this.lastGood = next.classification === 'unknown' ? undefined : next;
    this.publish();
    if (prev.failingSince && prev.classification === next.classification && prev.issuer === next.issuer)
      log.info({ issuer: next.issuer ?? null, classification: next.classification, failingSince: prev.failingSince }, 'service-account issuer re-check succeeded again');
    if (prev.classification !== next.classification || prev.issuer !== next.issuer || !prev.checkedAt) {
      const fields = { issuer: next.issuer ?? null, classification: next.classification, provider: next.provider ?? null, source: next.source };
      if (next.classification === 'unknown')
        log.warn(
          { ...fields, err: next.error === undefined ? undefined : errField(next.error) },
          'service-account issuer unknown: token-review-required only warns; set tokenReview.issuer (external, internal or the issuer URL)',
        );
      else log.info(fields, 'service-account issuer detected');
    }
    return next;
  }

  /** First detection now, then every tokenReview.recheckSeconds (an issuer can change on a live cluster). */
  async start(): Promise<void> {
    await this.refresh();
    const s = this.opts.config.tokenReview.issuer;
    if (s === 'external' || s === 'internal') return;
    // the config refuses anything but 1 to MAX_TIMER_SECONDS; a Config built otherwise is held to that here, never to
    // the 1 ms a longer interval would overflow to
    const seconds = Math.min(Math.max(this.opts.config.tokenReview.recheckSeconds, 1), MAX_TIMER_SECONDS);
    this.timer = setInterval(() => void this.refresh(), seconds * 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
