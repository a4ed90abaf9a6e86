// Certificates for the webhook's HTTPS endpoint, for installs without cert-manager and for local
// development: a self-signed ECDSA P-256 CA and a serving certificate signed by it.
// `kagenti-webhook certs --service NAME --namespace NS --out DIR [--days N] [--dev]`
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate as NodeX509, createPrivateKey, webcrypto } from 'node:crypto';
import { dirname, join } from 'node:path';
import { parseFlags } from './usage.ts';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface GeneratedCerts {
  /** PEM of the CA certificate (goes into the webhook configurations' caBundle). */
  caCert: string;
  /** PEM of the serving certificate. */
  tlsCert: string;
  /** PEM (PKCS#8) of the serving certificate's private key. */
  tlsKey: string;
}

export interface CertificateOptions {
  service: string;
  namespace: string;
  /** Validity of both certificates in days (default 365). */
  days?: number;
  /** Add `localhost` and `127.0.0.1` to the serving certificate. */
  dev?: boolean;
}

export const DEV_SERVICE = 'kagenti-webhook';
export const DEV_NAMESPACE = 'kagenti-system';
const DEFAULT_DAYS = 365;
const MAX_DAYS = 3650;

// RFC 1123 label: what a Service name and a namespace name must be.
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
const crypto = webcrypto;
x509.cryptoProvider.set(crypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const EC_KEY: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

/** The DNS names a serving certificate for Service NAME in namespace NS must carry. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

function randomSerial(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01; // positive and non-zero leading byte
  return Buffer.from(bytes).toString('hex');
}

function checkOptions(opts: CertificateOptions): number {
  if (!DNS_LABEL.test(opts.service)) {
    throw new Error(`--service ${JSON.stringify(opts.service)} is not a valid Service name (lowercase RFC 1123 label, at most 63 characters)`);
  }
  if (!DNS_LABEL.test(opts.namespace)) {
    throw new Error(`--namespace ${JSON.stringify(opts.namespace)} is not a valid namespace name (lowercase RFC 1123 label, at most 63 characters)`);
  }
  const days = opts.days ?? DEFAULT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new Error(`--days ${String(days)} must be a whole number of days from 1 to ${MAX_DAYS}`);
  }
  return days;
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function generateCertificates(opts: CertificateOptions): Promise<GeneratedCerts> {
  const days = checkOptions(opts);
  // Back-date by five minutes so a slightly slow clock elsewhere accepts the certificates at once.
  const notBefore = new Date(Date.now() - 5 * 60 * 1000);
  const notAfter = new Date(Date.now() + days * 24 * 60 * 60 * 1000);

  const caKeys = (await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caName = `CN=${opts.service}-ca, O=kagenti-webhook`;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: caName,
    notBefore,
    notAfter,
    keys: caKeys,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  const leafKeys = (await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
  const names: x509.JsonGeneralNames = serviceDnsNames(opts.service, opts.namespace).map((value) => ({ type: 'dns', value }));
  if (opts.dev) {
    names.push({ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' });
  }
  const tlsCert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${opts.service}.${opts.namespace}.svc`,
    issuer: caCert.subject,
    notBefore,
    notAfter,
    publicKey: leafKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: SIGNING,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names),
      await x509.SubjectKeyIdentifierExtension.create(leafKeys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caKeys.publicKey),
    ],
  });

  return {
    caCert: caCert.toString('pem') + '\n',
    tlsCert: tlsCert.toString('pem') + '\n',
    tlsKey: (await keyToPem(leafKeys.privateKey)) + '\n',
  };
}

// mkdir -p without `recursive: true`, which spins forever on some paths (e.g. under /proc) in Node 24.
function makeDir(dir: string, depth = 0): void {
  try {
    mkdirSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(dir).isDirectory()) return;
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir || depth > 64) throw err;
    makeDir(parent, depth + 1);
    mkdirSync(dir);
  }
}

/** Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into DIR, creating DIR when needed. */
export function writeCertificates(dir: string, certs: GeneratedCerts): void {
  makeDir(dir);
  writeFileSync(join(dir, 'ca.crt'), certs.caCert, { mode: 0o644 });
  writeFileSync(join(dir, 'tls.crt'), certs.tlsCert, { mode: 0o644 });
  const keyFile = join(dir, 'tls.key');
  writeFileSync(keyFile, certs.tlsKey, { mode: 0o600 });
  chmodSync(keyFile, 0o600); // an existing file keeps its old mode on write
}

/**
 * Checks that DIR holds a usable dev pair: all three files parse, the key matches the certificate,
 * the CA signed it, it is valid for at least another day, and it names localhost.
 * Returns a reason when it is not usable, or null.
 */
export function checkCertificateDir(dir: string, requiredNames: string[] = []): string | null {
  try {
    const ca = new NodeX509(readFileSync(join(dir, 'ca.crt')));
    const cert = new NodeX509(readFileSync(join(dir, 'tls.crt')));
    const key = createPrivateKey(readFileSync(join(dir, 'tls.key')));
    if (!cert.checkPrivateKey(key)) return 'tls.key does not match tls.crt';
    if (!cert.verify(ca.publicKey)) return 'tls.crt is not signed by ca.crt';
    const soon = Date.now() + 24 * 60 * 60 * 1000;
    if (Date.parse(cert.validTo) < soon || Date.parse(ca.validTo) < soon) return 'the certificate expires within a day';
    if (Date.parse(cert.validFrom) > Date.now() + 60 * 1000) return 'the certificate is not valid yet';
    for (const name of requiredNames) {
      if (cert.checkHost(name) === undefined && cert.checkIP(name) === undefined) return `tls.crt does not name ${name}`;
    }
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * For `serve --dev-certs DIR`: generates a dev CA and serving certificate (service kagenti-webhook,
 * namespace kagenti-system, plus localhost and 127.0.0.1) when DIR lacks a valid set; reuses it otherwise.
 */
export async function ensureDevCertificates(
  dir: string,
): Promise<{ caFile: string; certFile: string; keyFile: string; created: boolean }> {
  const caFile = join(dir, 'ca.crt');
  const certFile = join(dir, 'tls.crt');
  const keyFile = join(dir, 'tls.key');
  const present = existsSync(caFile) && existsSync(certFile) && existsSync(keyFile);
  if (present && checkCertificateDir(dir, ['localhost', '127.0.0.1', `${DEV_SERVICE}.${DEV_NAMESPACE}.svc`]) === null) {
    return { caFile, certFile, keyFile, created: false };
  }
  const certs = await generateCertificates({ service: DEV_SERVICE, namespace: DEV_NAMESPACE, dev: true });
  writeCertificates(dir, certs);
  return { caFile, certFile, keyFile, created: true };
}

export const CERTS_USAGE =
  'Usage: kagenti-webhook certs --service NAME --namespace NS --out DIR [--days N] [--dev]\n' +
  '\n' +
  'Writes ca.crt, tls.crt and tls.key (mode 0600) into DIR: an ECDSA P-256 CA and a serving certificate\n' +
  'for NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.cluster.local (plus localhost and 127.0.0.1 with --dev).\n' +
  'Put ca.crt into the webhook configurations\' caBundle; mount tls.crt and tls.key into the server.\n' +
  '\n' +
  '  --service NAME    the webhook Service name (e.g. kagenti-webhook)\n' +
  '  --namespace NS    the Service namespace (e.g. kagenti-system)\n' +
  '  --out DIR         directory to write to (created when missing; existing files are replaced)\n' +
  `  --days N          validity in days (default ${DEFAULT_DAYS}, at most ${MAX_DAYS})\n` +
  '  --dev             also valid for localhost and 127.0.0.1\n';

/** `kagenti-webhook certs ...`: 0 on success, 2 on a usage or write error (one line on stderr). */
export async function runCertsCommand(argv: string[]): Promise<number> {
  const fail = (msg: string): number => {
    process.stderr.write(`kagenti-webhook certs: ${msg} (see kagenti-webhook certs --help)\n`);
    return 2;
  };
  let values: { service?: string; namespace?: string; out?: string; days?: string; dev?: boolean; help?: boolean };
  try {
    values = parseFlags('certs', argv, {
      service: { type: 'string' },
      namespace: { type: 'string' },
      out: { type: 'string' },
      days: { type: 'string' },
      dev: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    });
  } catch (err) {
    process.stderr.write(`kagenti-webhook certs: ${(err as Error).message}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(CERTS_USAGE);
    return 0;
  }
  if (!values.service) return fail('--service NAME is required');
  if (!values.namespace) return fail('--namespace NS is required');
  if (!values.out) return fail('--out DIR is required');
  let days = DEFAULT_DAYS;
  if (values.days !== undefined) {
    if (!/^\d{1,5}$/.test(values.days)) return fail(`--days ${JSON.stringify(values.days)} is not a whole number of days`);
    days = Number(values.days);
  }
  let certs: GeneratedCerts;
  try {
    certs = await generateCertificates({ service: values.service, namespace: values.namespace, days, dev: values.dev === true });
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err));
  }
  try {
    writeCertificates(values.out, certs);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    process.stderr.write(`kagenti-webhook certs: cannot write to ${values.out}: ${(e.message || String(e.code)).split('\n')[0]}\n`);
    return 2;
  }
  const names = serviceDnsNames(values.service, values.namespace);
  if (values.dev) names.push('localhost', '127.0.0.1');
  process.stdout.write(
    `Wrote ${join(values.out, 'ca.crt')}, ${join(values.out, 'tls.crt')}, ${join(values.out, 'tls.key')} ` +
      `(valid ${days} days for ${names.join(', ')})\n`,
  );
  return 0;
}
