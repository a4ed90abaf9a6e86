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
  const o: SecureContextOptions = { cert: m.cert, key: m.key, minVersion: MIN_VERSION };
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
      { certFile: this.certFile, subject: cert.subject, serial: cert.serialNumber, notAfter: cert.validTo, clientAuth: m.ca !== undefined },
      'loaded TLS certificate',
    );
    this.serving(cert);
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

  /** Options for https.createServer: the current pair, TLS 1.2 minimum, client certificates when a client CA is set. */
  serverOptions(): ServerOptions {
    if (this.current === undefined) this.load();
    const m = this.current!;
    const o: ServerOptions = { cert: m.cert, key: m.key, minVersion: MIN_VERSION };
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
      { certFile: this.certFile, subject: cert.subject, serial: cert.serialNumber, notAfter: cert.validTo },
      'reloaded TLS certificate; new connections use it',
    );
    this.serving(cert);
    return true;
  }

  // Log and count a bad pair once per distinct content (a missing file: once until it changes), keep serving the old one.
  private reject(m: Material | undefined, err: Error): void {
    const key = m ?? { cert: '', key: '', ca: err.message };
    if (same(this.rejected, key)) return;
    this.rejected = key;
    tlsReloads.inc({ result: 'rejected' });
    this.log.error({ certFile: this.certFile, keyFile: this.keyFile, err: err.message }, 'ignoring new TLS files until they form a valid pair; still serving the previous certificate');
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
        this.log.warn({ dir, err: (err as Error).message }, 'cannot watch certificate directory; relying on polling');
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
