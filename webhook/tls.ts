// TLS for the HTTPS admission server: load the serving pair, and reload it when the files change.
// cert-manager renews a certificate by rewriting its Secret; the kubelet then swaps the volume's `..data`
// symlink, so the files change all at once but under a directory watch, not a file watch. We watch the
// directories and also poll, and swap the server's secure context only for a complete, matching pair.
// Connections already established keep their session; new handshakes get the new certificate.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import type { Server, ServerOptions } from 'node:https';
import { dirname } from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Logger } from 'pino';
import { tlsCertificateExpiry, tlsReloads } from './metrics.ts';
import { errField } from './log-fields.ts';

export interface CertificateReloaderOptions {
  certFile: string;
  keyFile: string;
  /** When set, clients must present a certificate signed by this CA (e.g. the API server's). */
  clientCaFile?: string;
  log: Logger;
  /** Poll interval in ms, the fallback when directory events are missed (default 10000). */
  pollMs?: number;
  /** How often the served certificate's expiry is looked at again while attached, in ms (default EXPIRY_CHECK_MS). */
  expiryCheckMs?: number;
  /** An unchanged expired, expiring or not-yet-valid state is logged again after this long, in ms (default EXPIRY_REPEAT_MS). */
  expiryRepeatMs?: number;
}

interface Material {
  cert: string;
  key: string;
  ca?: string;
}

const MIN_VERSION = 'TLSv1.2' as const;
/**
 * The cipher suites offered. TLS 1.3: OpenSSL's three, as before. TLS 1.2: ECDHE (forward secrecy) with AES-GCM or
 * ChaCha20-Poly1305 only, no CBC or SHA-1 suites; the API server's Go client offers all of these by default.
 */
export const CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';

/** Something about a serving certificate that the API server will not accept: `refuse` ones are not served. */
export interface ServingProblem {
  /** Stable name, the `check` field of the log line. */
  check: 'ca-certificate' | 'no-subject-alt-name' | 'no-server-auth' | 'no-service-name';
  refuse: boolean;
  message: string;
}

/**
 * What keeps the API server (a Go client, which checks the subjectAltName and ignores the CN, and checks the extended
 * key usage) from accepting `cert` as the webhook's serving certificate. One without any subjectAltName (a CA's
 * ca.crt mounted by mistake) is refused; a CA certificate that names hosts (a self-signed one), one without
 * serverAuth, or one without a Service name (`*.svc`, as for local development with localhost), is served with a
 * warning.
 */
export function servingProblems(cert: X509Certificate, certFile: string): ServingProblem[] {
  const problems: ServingProblem[] = [];
  const sans = (cert.subjectAltName ?? '').split(', ').filter(Boolean);
  const dns = sans.filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4));
  const fix = 'Fix: serve the certificate cert-manager issues (Certificate kagenti-webhook-serving) or one from kagenti-webhook certs --service kagenti-webhook --namespace kagenti-system --out DIR';
  const named = sans.some((n) => n.startsWith('DNS:') || n.startsWith('IP Address:'));
  // A CA certificate that names no host (ca.crt mounted by mistake) is refused. One that names hosts is served with
  // a warning: `openssl req -x509` writes CA:TRUE on a self-signed serving certificate, which the API server accepts
  // when caBundle is that same certificate (Go takes a root it is given as a chain of one).
  if (cert.ca && !named)
    problems.push({
      check: 'ca-certificate',
      refuse: true,
      message: `TLS certificate ${certFile} is a CA certificate (basicConstraints CA:TRUE) that names no host, not a serving certificate: the API server would refuse it, and serving it puts the CA's private key in the pod, where whoever reads it can sign certificates the API server trusts. ${fix}, signed by that CA; keep the CA's key out of the cluster`,
    });
  else if (cert.ca)
    problems.push({
      check: 'ca-certificate',
      refuse: false,
      message: `TLS certificate ${certFile} is a CA certificate (basicConstraints CA:TRUE): served, since the API server accepts a self-signed one (openssl req -x509) when caBundle is that certificate, but if it is a CA that signs other certificates, its private key is now in the pod, where whoever reads it can sign certificates the API server trusts. ${fix}, signed by that CA; keep the CA's key out of the cluster`,
    });
  else if (!named)
    problems.push({
      check: 'no-subject-alt-name',
      refuse: true,
      message: `TLS certificate ${certFile} names no DNS name or IP address (subjectAltName), only its subject ${JSON.stringify(cert.subject.replace(/\n/g, ', '))}: the API server ignores the CN and refuses the certificate, so every admission through this webhook would fail. ${fix}, which names kagenti-webhook.kagenti-system.svc`,
    });
  const eku = cert.keyUsage; // Node: the extended key usage OIDs, undefined when the extension is absent (any use)
  if (eku !== undefined && !eku.includes(SERVER_AUTH) && !eku.includes(ANY_EXTENDED_KEY_USAGE))
    problems.push({
      check: 'no-server-auth',
      refuse: false,
      message: `TLS certificate ${certFile} does not allow server authentication (its extended key usage is ${eku.join(', ') || 'empty'}, without serverAuth ${SERVER_AUTH}): the API server refuses it ('x509: certificate specifies an incompatible key usage'), so every admission through this webhook fails. ${fix}, which carries serverAuth`,
    });
  if (dns.length > 0 && !dns.some((n) => n.endsWith('.svc')))
    problems.push({
      check: 'no-service-name',
      refuse: false,
      message: `TLS certificate ${certFile} names no Service (no DNS name ending in .svc; it names ${dns.join(', ')}): the API server calls the webhook as kagenti-webhook.kagenti-system.svc and refuses a certificate without that name, so this one serves local development only. ${fix}`,
    });
  else if (dns.length === 0 && named)
    problems.push({
      check: 'no-service-name',
      refuse: false,
      message: `TLS certificate ${certFile} names IP addresses only (${sans.join(', ')}), no Service: the API server calls the webhook as kagenti-webhook.kagenti-system.svc and refuses a certificate without that name (a webhook configured with a url of one of those addresses works). ${fix}`,
    });
  return problems;
}

/** A serving certificate that expires within this many days is logged as a warning when loaded, reloaded or re-checked. */
export const EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;
/**
 * While the server runs, the served certificate is looked at again this often, so that one that expires without a
 * renewal (cert-manager failing for weeks) is logged before admissions fail, not only at load and reload.
 */
export const EXPIRY_CHECK_MS = 3_600_000;
/** The re-check logs a certificate's unchanged state again at most this often (a change is logged at once). */
export const EXPIRY_REPEAT_MS = DAY_MS;

type Validity = ReturnType<typeof certificateValidity>;

/** A new certificate whose notBefore is at most this far ahead (an issuer's clock a little ahead) is installed. */
const NOT_BEFORE_GRACE_MS = 60_000;

/** Where a certificate stands at `now`: valid, expiring within EXPIRY_WARNING_DAYS, expired, or not valid yet. */
export function certificateValidity(cert: X509Certificate, now = Date.now()): 'valid' | 'expiring' | 'expired' | 'not-yet-valid' {
  if (cert.validFromDate.getTime() > now) return 'not-yet-valid';
  const left = cert.validToDate.getTime() - now;
  if (left <= 0) return 'expired';
  return left < EXPIRY_WARNING_DAYS * DAY_MS ? 'expiring' : 'valid';
}

function readFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new Error(`cannot read ${what} ${file}: ${why}`);
  }
}

/** Checks a certificate/key pair (and optional client CA bundle); throws one clear line. */
export function checkMaterial(m: Material, files: { certFile: string; keyFile: string; clientCaFile?: string }): X509Certificate {
  if (!m.cert.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`TLS certificate ${files.certFile} is not a PEM certificate`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(m.cert);
  } catch {
    throw new Error(`TLS certificate ${files.certFile} is not a PEM certificate`);
  }
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(m.key)) throw new Error(`TLS key ${files.keyFile} is not a PEM private key`);
  let key;
  try {
    key = createPrivateKey(m.key);
  } catch {
    throw new Error(`TLS key ${files.keyFile} is not a PEM private key`);
  }
  if (!cert.checkPrivateKey(key)) throw new Error(`TLS key ${files.keyFile} does not match certificate ${files.certFile}`);
  const refused = servingProblems(cert, files.certFile).find((p) => p.refuse);
  if (refused) throw new Error(refused.message);
  if (m.ca !== undefined) {
    try {
      new X509Certificate(m.ca);
    } catch {
      throw new Error(`client CA ${files.clientCaFile} is not a PEM certificate`);
    }
  }
  try {
    createSecureContext(contextOptions(m));
  } catch (err) {
    throw new Error(`TLS certificate ${files.certFile} and key ${files.keyFile} are not usable: ${(err as Error).message.split('\n')[0]}`);
  }
  return cert;
}

function contextOptions(m: Material): SecureContextOptions {
  const o: SecureContextOptions = { cert: m.cert, key: m.key, minVersion: MIN_VERSION, ciphers: CIPHERS };
  if (m.ca !== undefined) o.ca = m.ca;
  return o;
}

function same(a: Material | undefined, b: Material): boolean {
  return a !== undefined && a.cert === b.cert && a.key === b.key && a.ca === b.ca;
}

export class CertificateReloader {
  readonly certFile: string;
  readonly keyFile: string;
  readonly clientCaFile: string | undefined;
  private readonly log: Logger;
  private readonly pollMs: number;
  private current: Material | undefined;
  private rejected: Material | undefined;
  private server: Server | undefined;
  private watchers: FSWatcher[] = [];
  private pollTimer: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private closed = false;
  private reloads = 0;
  private readonly expiryCheckMs: number;
  private readonly expiryRepeatMs: number;
  private expiryTimer: NodeJS.Timeout | undefined;
  /** The certificate now served, and its state when it was last logged (or seen valid), for the re-check. */
  private served: { cert: X509Certificate; state: Validity; at: number } | undefined;

  constructor(opts: CertificateReloaderOptions) {
    this.certFile = opts.certFile;
    this.keyFile = opts.keyFile;
    this.clientCaFile = opts.clientCaFile;
    this.log = opts.log;
    this.pollMs = opts.pollMs ?? 10_000;
    this.expiryCheckMs = opts.expiryCheckMs ?? EXPIRY_CHECK_MS;
    this.expiryRepeatMs = opts.expiryRepeatMs ?? EXPIRY_REPEAT_MS;
  }

  private read(): Material {
    const m: Material = { cert: readFile(this.certFile, 'TLS certificate'), key: readFile(this.keyFile, 'TLS key') };
    if (this.clientCaFile !== undefined) m.ca = readFile(this.clientCaFile, 'client CA');
    return m;
  }

  /** Reads and checks the pair now; throws an Error with one clear line. */
  load(): void {
    const m = this.read();
    const cert = checkMaterial(m, this);
    this.current = m;
    this.rejected = undefined;
    this.log.info(
      { certFile: this.certFile, subject: cert.subject, subjectAltName: cert.subjectAltName, serial: cert.serialNumber, notAfter: cert.validTo, clientAuth: m.ca !== undefined },
      'loaded TLS certificate',
    );
    this.warnServing(cert);
    this.serving(cert);
  }

  /** One warning line for each reason the API server would not accept the certificate now served (see servingProblems). */
  private warnServing(cert: X509Certificate): void {
    for (const p of servingProblems(cert, this.certFile)) this.log.warn({ certFile: this.certFile, check: p.check, serial: cert.serialNumber }, p.message);
  }

  /**
   * The certificate now served: its expiry goes to the metric, and one line says when it is expired, not valid
   * yet or expiring soon. It is served all the same: a renewal may be on its way, and it is picked up without a
   * restart (readiness is not touched either: another replica would serve the same Secret).
   */
  private serving(cert: X509Certificate): void {
    tlsCertificateExpiry.set(cert.validToDate.getTime() / 1000);
    const now = Date.now();
    this.report(cert, certificateValidity(cert, now), now);
  }

  /**
   * Looks at the served certificate again (the periodic re-check; `now` for tests): logs its state when it changed
   * since the last line (valid → expiring → expired) or, unchanged, when the last line is EXPIRY_REPEAT_MS old.
   * Returns whether it logged.
   */
  checkExpiry(now = Date.now()): boolean {
    const s = this.served;
    if (s === undefined) return false;
    const state = certificateValidity(s.cert, now);
    if (state === s.state && (state === 'valid' || now - s.at < this.expiryRepeatMs)) return false;
    this.report(s.cert, state, now);
    return state !== 'valid';
  }

  /** One line for a certificate that is not valid at `now` (nothing for a valid one); remembered for the re-check. */
  private report(cert: X509Certificate, state: Validity, now: number): void {
    this.served = { cert, state, at: now };
    if (state === 'valid') return;
    const notAfter = cert.validToDate.getTime();
    const fields = { certFile: this.certFile, serial: cert.serialNumber, notBefore: cert.validFromDate.toISOString(), notAfter: new Date(notAfter).toISOString() };
    const renew =
      'Fix: renew it (cert-manager: kubectl -n kagenti-system describe certificate kagenti-webhook-serving; without cert-manager: make certs and re-apply the overlay).';
    if (state === 'expiring') {
      const days = (notAfter - now) / DAY_MS;
      this.log.warn(
        { ...fields, daysLeft: Math.floor(days * 10) / 10 },
        `TLS certificate ${this.certFile} expires ${fields.notAfter}, in ${days < 1 ? 'less than a day' : Math.round(days) === 1 ? '1 day' : `${Math.round(days)} days`}: after that the API server refuses it and every admission through this webhook fails. A renewal is due (cert-manager renews 30 days ahead with the shipped Certificate). ${renew}`,
      );
    } else if (state === 'expired') {
      this.log.error(
        { ...fields, daysAgo: Math.floor(((now - notAfter) / DAY_MS) * 10) / 10 },
        `TLS certificate ${this.certFile} expired ${fields.notAfter}: the API server refuses it, so every admission through this webhook fails (agent pods cannot be created). Still serving it, so a renewal is picked up as soon as it arrives. ${renew}`,
      );
    } else {
      this.log.error(
        fields,
        `TLS certificate ${this.certFile} is not valid until ${fields.notBefore}: the API server refuses it until then, so every admission through this webhook fails. Still serving it. Fix: check the clock of this node and of the issuer, or re-issue the certificate.`,
      );
    }
  }

  /** Options for https.createServer: the current pair, TLS 1.2 minimum with CIPHERS, client certificates when a client CA is set. */
  serverOptions(): ServerOptions {
    if (this.current === undefined) this.load();
    const m = this.current!;
    const o: ServerOptions = { cert: m.cert, key: m.key, minVersion: MIN_VERSION, ciphers: CIPHERS };
    if (m.ca !== undefined) {
      o.ca = m.ca;
      o.requestCert = true;
      o.rejectUnauthorized = true;
    }
    return o;
  }

  /** Number of successful reloads since start (not counting the first load). */
  reloadCount(): number {
    return this.reloads;
  }

  /**
   * Re-reads the files; swaps the server's secure context when they changed and form a valid pair.
   * Returns true when a new pair was installed. Never throws.
   */
  reloadNow(): boolean {
    if (this.closed) return false;
    let m: Material;
    try {
      m = this.read();
    } catch (err) {
      this.reject(undefined, err as Error);
      return false;
    }
    if (same(this.current, m)) {
      this.rejected = undefined;
      return false;
    }
    let cert: X509Certificate;
    try {
      cert = checkMaterial(m, this);
    } catch (err) {
      this.reject(m, err as Error);
      return false;
    }
    // An expired or not-yet-valid certificate does not replace one the API server still accepts: every admission
    // would fail from then on (a restore of an old Secret, a clock-skewed issuer). The files are looked at again at
    // each poll, so one that becomes valid later is installed then. Served already expired, any valid pair is taken.
    const now = Date.now();
    const served = this.served?.cert;
    if (served && served.validToDate.getTime() > now) {
      const why =
        cert.validToDate.getTime() <= now
          ? `expired ${cert.validToDate.toISOString()}`
          : cert.validFromDate.getTime() > now + NOT_BEFORE_GRACE_MS
            ? `not valid until ${cert.validFromDate.toISOString()}`
            : undefined;
      if (why) {
        this.reject(m, new Error(`TLS certificate ${this.certFile} (serial ${cert.serialNumber}) is ${why}, and the one served (serial ${served.serialNumber}) is valid until ${served.validToDate.toISOString()}: the API server would refuse the new one, so it is not installed`));
        return false;
      }
    }
    try {
      this.server?.setSecureContext(contextOptions(m));
    } catch (err) {
      this.reject(m, err as Error);
      return false;
    }
    this.current = m;
    this.rejected = undefined;
    this.reloads++;
    tlsReloads.inc({ result: 'ok' });
    this.log.info(
      { certFile: this.certFile, subject: cert.subject, subjectAltName: cert.subjectAltName, serial: cert.serialNumber, notAfter: cert.validTo },
      'reloaded TLS certificate; new connections use it',
    );
    this.warnServing(cert);
    this.serving(cert);
    return true;
  }

  // Log and count a bad pair once per distinct content (a missing file: once until it changes), keep serving the old one.
  private reject(m: Material | undefined, err: Error): void {
    const key = m ?? { cert: '', key: '', ca: err.message };
    if (same(this.rejected, key)) return;
    this.rejected = key;
    tlsReloads.inc({ result: 'rejected' });
    this.log.error({ certFile: this.certFile, keyFile: this.keyFile, err: errField(err) }, 'ignoring new TLS files until they form a valid pair; still serving the previous certificate');
  }

  private schedule(): void {
    if (this.closed) return;
    // Writers replace cert and key one after the other; wait for the burst of events to settle.
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.reloadNow();
    }, 100);
    this.debounce.unref();
  }

  private watchDirs(): void {
    for (const w of this.watchers) w.close();
    this.watchers = [];
    const dirs = new Set([dirname(this.certFile), dirname(this.keyFile)]);
    if (this.clientCaFile !== undefined) dirs.add(dirname(this.clientCaFile));
    for (const dir of dirs) {
      try {
        const w = watch(dir, { persistent: false }, () => this.schedule());
        w.on('error', () => {
          // The directory went away (or the watch broke): the poll keeps going and re-arms the watch.
          w.close();
          this.watchers = this.watchers.filter((x) => x !== w);
        });
        this.watchers.push(w);
      } catch (err) {
        this.log.warn({ dir, err: errField(err) }, 'cannot watch certificate directory; relying on polling');
      }
    }
  }

  /**
   * Starts watching the files and swapping the server's certificate when they change, and re-checking the served
   * certificate's expiry. Everything stops at close(), or when the server closes. No timer keeps the process alive.
   */
  attach(server: Server): void {
    if (this.current === undefined) this.load();
    this.server = server;
    this.closed = false;
    this.watchDirs();
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = setInterval(() => {
      if (this.watchers.length === 0) this.watchDirs();
      this.reloadNow();
    }, this.pollMs);
    this.pollTimer.unref();
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = setInterval(() => this.checkExpiry(), this.expiryCheckMs);
    this.expiryTimer.unref();
    server.once('close', () => {
      if (this.server === server) this.close();
    });
  }

  close(): void {
    this.closed = true;
    for (const w of this.watchers) w.close();
    this.watchers = [];
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.debounce) clearTimeout(this.debounce);
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.pollTimer = undefined;
    this.debounce = undefined;
    this.expiryTimer = undefined;
  }
}
