// Certificates for the webhook's HTTPS endpoint, for installs without cert-manager and for local
// development: a self-signed ECDSA P-256 CA and a serving certificate signed by it.
// `kagenti-webhook certs --service NAME --namespace NS --out DIR [--days N] [--dev]`
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { X509Certificate as NodeX509, createPrivateKey, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import { isDnsLabel } from './identity.ts';
import { parseFlags } from './usage.ts';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface GeneratedCerts {
  /**
   * PEM of the CA certificate (goes into the webhook configurations' caBundle); after a CA rollover, followed by
   * the previous CA certificates that are still valid.
   */
  caCert: string;
  /** PEM (PKCS#8) of the CA's private key, kept beside ca.crt so the next run can sign with the same CA. */
  caKey: string;
  /** PEM of the serving certificate. */
  tlsCert: string;
  /** PEM (PKCS#8) of the serving certificate's private key. */
  tlsKey: string;
}

export interface CertificateOptions {
  service: string;
  namespace: string;
  /** Validity of the serving certificate in days (default 365, at most MAX_DAYS); a new CA is valid for CA_DAYS. */
  days?: number;
  /** Add `localhost` and `127.0.0.1` to the serving certificate. */
  dev?: boolean;
  /** A CA to sign with (from an earlier run) instead of a new one. */
  ca?: ExistingCa;
  /** CA certificates (PEM) to keep in ca.crt after the new CA's: the previous ones, still trusted by running pods. */
  previousCas?: string[];
}

/** A CA from an earlier run: its certificate and private key (PEM). */
export interface ExistingCa {
  cert: string;
  key: string;
}

export const DEV_SERVICE = 'kagenti-webhook';
export const DEV_NAMESPACE = 'kagenti-system';
const DEFAULT_DAYS = 365;
const MAX_DAYS = 3650;
/**
 * Validity of a new CA: a year beyond the longest serving certificate (--days at most MAX_DAYS), so the next run, which
 * needs the CA to outlive the new certificate, reuses it even at --days MAX_DAYS (for a year), and caBundle stays.
 */
export const CA_DAYS = MAX_DAYS + 365;
const DAY_MS = 24 * 60 * 60 * 1000;

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

/** A Service name: an RFC 1035 label (lowercase letters, digits and '-', starting with a letter, at most 63). */
function isServiceName(s: string): boolean {
  return isDnsLabel(s) && /^[a-z]/.test(s);
}

function checkOptions(opts: CertificateOptions): number {
  if (!isServiceName(opts.service)) {
    throw new Error(
      `--service ${JSON.stringify(opts.service)} is not a valid Service name (an RFC 1035 label: lowercase letters, digits and '-', starting with a letter, at most 63 characters); the API server refuses such a Service, so no webhook could reach it`,
    );
  }
  if (!isDnsLabel(opts.namespace)) {
    throw new Error(`--namespace ${JSON.stringify(opts.namespace)} is not a valid namespace name (lowercase RFC 1123 label, at most 63 characters)`);
  }
  const days = opts.days ?? DEFAULT_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new Error(`--days ${String(days)} must be a whole number of days from 1 to ${MAX_DAYS}`);
  }
  return days;
}

/** One DER element at `at`: its tag, where its contents start, and where it ends. */
function derElement(der: Uint8Array, at: number): { at: number; tag: number; start: number; end: number } {
  if (at + 2 > der.length) throw new Error('truncated DER');
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) throw new Error('unsupported DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  if (start + len > der.length) throw new Error('truncated DER');
  return { at, tag, start, end: start + len };
}

/**
 * The issuer and subject Names of a DER certificate, as the bytes it carries. Go's x509 (kube-apiserver, kubectl)
 * finds a certificate's CA by comparing its issuer with the CA's subject byte for byte, so a serving certificate must
 * carry its CA's subject exactly as encoded there (openssl writes UTF8String; a Name rebuilt from its text would not).
 */
export function certificateNames(der: Uint8Array): { issuer: Buffer; subject: Buffer } {
  const tbs = derElement(der, derElement(der, 0).start);
  let at = tbs.start;
  const next = () => {
    const e = derElement(der, at);
    at = e.end;
    return e;
  };
  if (next().tag === 0xa0) next(); // [0] version, then the serial number
  next(); // signature algorithm
  const issuer = next();
  next(); // validity
  const subject = next();
  return { issuer: Buffer.from(der.subarray(issuer.at, issuer.end)), subject: Buffer.from(der.subarray(subject.at, subject.end)) };
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = await crypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export async function generateCertificates(opts: CertificateOptions): Promise<GeneratedCerts> {
  const days = checkOptions(opts);
  // Back-date by five minutes so a slightly slow clock elsewhere accepts the certificates at once.
  const notBefore = new Date(Date.now() - 5 * 60 * 1000);
  const notAfter = new Date(Date.now() + days * DAY_MS);

  let caCert: x509.X509Certificate;
  let caKeys: { privateKey: CryptoKey; publicKey: CryptoKey };
  let caKey: string;
  if (opts.ca) {
    caCert = new x509.X509Certificate(opts.ca.cert);
    caKey = opts.ca.key.endsWith('\n') ? opts.ca.key : `${opts.ca.key}\n`;
    // SEC1 ("EC PRIVATE KEY", as openssl ecparam writes it) or PKCS#8: WebCrypto imports PKCS#8 only. The file is
    // written back as it was.
    const der = new Uint8Array(createPrivateKey(opts.ca.key).export({ type: 'pkcs8', format: 'der' }));
    caKeys = { privateKey: await crypto.subtle.importKey('pkcs8', der, EC_KEY, true, ['sign']), publicKey: await caCert.publicKey.export(crypto as never) };
    if (caCert.notAfter < notAfter) throw new Error(`the CA expires (${caCert.notAfter.toISOString()}) before the serving certificate would`);
  } else {
    const generated = (await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
    caKeys = generated;
    caKey = (await keyToPem(generated.privateKey)) + '\n';
    caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: randomSerial(),
      name: `CN=${opts.service}-ca, O=kagenti-webhook`,
      notBefore,
      notAfter: new Date(Date.now() + CA_DAYS * DAY_MS),
      keys: generated,
      signingAlgorithm: SIGNING,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(generated.publicKey),
      ],
    });
  }

  const caSubject = certificateNames(new Uint8Array(caCert.rawData)).subject;
  const leafKeys = (await crypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify'])) as CryptoKeyPair;
  const names: x509.JsonGeneralNames = serviceDnsNames(opts.service, opts.namespace).map((value) => ({ type: 'dns', value }));
  if (opts.dev) {
    names.push({ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' });
  }
  const tlsCert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${opts.service}.${opts.namespace}.svc`,
    // the CA's subject as its certificate encodes it, not rebuilt from text (see certificateNames)
    issuer: new x509.Name(caSubject),
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

  if (!certificateNames(new Uint8Array(tlsCert.rawData)).issuer.equals(caSubject))
    throw new Error(
      `the CA's subject (${caCert.subject}) cannot be copied byte for byte into the serving certificate's issuer, and Go clients (the API server) would not find the CA. Fix: use a CA whose subject is a plain DER Name, or pass --new-ca`,
    );
  const previous = (opts.previousCas ?? []).map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`));
  return {
    caCert: [caCert.toString('pem') + '\n', ...previous].join(''),
    caKey,
    tlsCert: tlsCert.toString('pem') + '\n',
    tlsKey: (await keyToPem(leafKeys.privateKey)) + '\n',
  };
}

/** The certificates of a PEM bundle, in order. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * What an earlier run left in DIR, for the next one: the CA to reuse (ca.crt's first certificate with ca.key,
 * when they match and the CA outlives a serving certificate of `days`), and the CA certificates in ca.crt that
 * are still valid (to keep trusting them after a CA rollover). `why` says why the CA is not reused.
 */
export function previousCertificates(
  dir: string,
  days: number,
  now = Date.now(),
): { ca?: ExistingCa; stillValid: string[]; why?: string; unusable?: string } {
  let bundle: string;
  try {
    bundle = readFileSync(join(dir, 'ca.crt'), 'utf8');
  } catch {
    return { stillValid: [], why: 'no ca.crt' };
  }
  const stillValid = pemCertificates(bundle).filter((pem) => {
    try {
      const c = new NodeX509(pem);
      return c.ca && Date.parse(c.validTo) > now;
    } catch {
      return false;
    }
  });
  const first = pemCertificates(bundle)[0];
  if (!first) return { stillValid, why: 'ca.crt holds no certificate' };
  let key: string;
  try {
    key = readFileSync(join(dir, 'ca.key'), 'utf8');
  } catch {
    return { stillValid, why: 'no ca.key (written by earlier versions? a new CA is made)' };
  }
  try {
    const cert = new NodeX509(first);
    if (!cert.ca) return { stillValid, why: "ca.crt's first certificate is not a CA" };
    const k = createPrivateKey(key);
    if (!cert.checkPrivateKey(k)) return { stillValid, why: 'ca.key does not match ca.crt' };
    if (Date.parse(cert.validTo) < now + days * DAY_MS + DAY_MS) return { stillValid, why: `the CA expires ${cert.validTo}, before a new serving certificate would` };
    // A CA of the user's own that certs cannot sign with: said, never replaced behind their back.
    const curve = k.asymmetricKeyDetails?.namedCurve;
    if (k.asymmetricKeyType !== 'ec' || curve !== 'prime256v1')
      return {
        stillValid,
        why: 'ca.key is not an ECDSA P-256 key',
        unusable: `${join(dir, 'ca.key')} is ${k.asymmetricKeyType === 'ec' ? `an EC key on curve ${curve}` : `an ${String(k.asymmetricKeyType).toUpperCase()} key`}; certs signs only with an ECDSA P-256 CA. Fix: put a P-256 CA in ${dir} (openssl ecparam -name prime256v1 -genkey), or pass --new-ca to make a new CA (the webhook configurations' caBundle changes then)`,
      };

  } catch (err) {
    return { stillValid, why: `ca.crt or ca.key cannot be read: ${(err as Error).message}` };
  }
  return { ca: { cert: first, key }, stillValid };
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

/** Writes `ca.crt`, `ca.key` (mode 0600), `tls.crt` and `tls.key` (mode 0600) into DIR, creating DIR when needed. */
export function writeCertificates(dir: string, certs: GeneratedCerts): void {
  makeDir(dir);
  for (const [name, text] of [['ca.key', certs.caKey], ['tls.key', certs.tlsKey]] as const) {
    const keyFile = join(dir, name);
    writeFileSync(keyFile, text, { mode: 0o600 });
    chmodSync(keyFile, 0o600); // an existing file keeps its old mode on write
  }
  writeFileSync(join(dir, 'ca.crt'), certs.caCert, { mode: 0o644 });
  writeFileSync(join(dir, 'tls.crt'), certs.tlsCert, { mode: 0o644 });
}

/**
 * Checks that DIR holds a usable dev pair: all three files parse, the key matches the certificate,
 * the CA signed it and is its issuer byte for byte, it is valid for at least another day, and it names localhost.
 * Returns a reason when it is not usable, or null.
 */
export function checkCertificateDir(dir: string, requiredNames: string[] = []): string | null {
  try {
    const ca = new NodeX509(readFileSync(join(dir, 'ca.crt')));
    const cert = new NodeX509(readFileSync(join(dir, 'tls.crt')));
    const key = createPrivateKey(readFileSync(join(dir, 'tls.key')));
    if (!cert.checkPrivateKey(key)) return 'tls.key does not match tls.crt';
    if (!cert.verify(ca.publicKey)) return 'tls.crt is not signed by ca.crt';
    // OpenSSL (Node) compares names loosely, Go byte for byte: a pair made by earlier versions with a CA of the user's own
    if (!certificateNames(cert.raw).issuer.equals(certificateNames(ca.raw).subject))
      return "tls.crt's issuer is not ca.crt's subject byte for byte, so Go clients (the API server) do not find the CA";
    const soon = Date.now() + 24 * 60 * 60 * 1000;
    if (Date.parse(cert.validTo) < soon || Date.parse(ca.validTo) < soon) return 'the certificate expires within a day';
    if (Date.parse(cert.validFrom) > Date.now() + 60 * 1000) return 'the certificate is not valid yet';
    for (const name of requiredNames) {
      if ((isIP(name) ? cert.checkIP(name) : cert.checkHost(name)) === undefined) return `tls.crt does not name ${name}`;
    }
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

/**
 * For `serve --dev-certs DIR`: a dev serving certificate (service kagenti-webhook, namespace kagenti-system, plus
 * localhost and 127.0.0.1), reused while DIR holds a valid one. A new one is signed by the CA in DIR when it can
 * sign, as `certs --dev` does, so a CA that a caBundle trusts is never replaced; with a ca.key it cannot sign with,
 * DIR is left as it is and this throws. Only a DIR without ca.key gets a new CA.
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
  const prev = previousCertificates(dir, DEFAULT_DAYS);
  if (!prev.ca && existsSync(join(dir, 'ca.key')))
    throw new Error(
      `${join(dir, 'ca.key')} is a CA key that cannot sign a development certificate (${prev.unusable ?? prev.why}), and it is not replaced. Fix: use another directory for --dev-certs, or renew this one with kagenti-webhook certs --dev --out ${dir} (--new-ca for a new CA)`,
    );
  const previousCas = prev.ca ? prev.stillValid.filter((pem) => pem.trim() !== prev.ca!.cert.trim()) : prev.stillValid;
  const certs = await generateCertificates({ service: DEV_SERVICE, namespace: DEV_NAMESPACE, dev: true, ca: prev.ca, previousCas });
  writeCertificates(dir, certs);
  return { caFile, certFile, keyFile, created: true };
}

export const CERTS_USAGE =
  'Usage: kagenti-webhook certs --service NAME --namespace NS --out DIR [--days N] [--dev] [--new-ca]\n' +
  '\n' +
  'Writes ca.crt, ca.key, tls.crt and tls.key (keys mode 0600) into DIR: an ECDSA P-256 CA and a serving\n' +
  'certificate for NAME, NAME.NS, NAME.NS.svc and NAME.NS.svc.cluster.local (plus localhost and 127.0.0.1\n' +
  'with --dev). The webhook configurations\' caBundle is ca.crt base64-encoded, the whole PEM file on one\n' +
  'line (base64 < DIR/ca.crt | tr -d \'\\n\'; manifests/self-signed does it for you); mount tls.crt and tls.key into the\n' +
  'server; keep ca.key out of the cluster. Run again to renew: the CA in DIR signs the new certificate, so\n' +
  'caBundle does not change and pods still serving the old one keep working during the rollout. A new CA\n' +
  '(none in DIR, it expires too soon, or --new-ca) is followed in ca.crt by the previous ones still valid.\n' +
  '\n' +
  '  --service NAME    the webhook Service name (e.g. kagenti-webhook)\n' +
  '  --namespace NS    the Service namespace (e.g. kagenti-system)\n' +
  '  --out DIR         directory to write to (created when missing; the CA there is reused)\n' +
  `  --days N          validity of the serving certificate in days (default ${DEFAULT_DAYS}, at most ${MAX_DAYS}); a new CA gets ${CA_DAYS}, a year beyond the longest\n` +
  '  --dev             also valid for localhost and 127.0.0.1\n' +
  '  --new-ca          make a new CA even when DIR has a usable one (the old one stays in ca.crt while valid)\n';

/** `kagenti-webhook certs ...`: 0 on success, 2 on a usage or write error (one line on stderr). */
export async function runCertsCommand(argv: string[]): Promise<number> {
  const fail = (msg: string): number => {
    process.stderr.write(`kagenti-webhook certs: ${msg} (see kagenti-webhook certs --help)\n`);
    return 2;
  };
  let values: { service?: string; namespace?: string; out?: string; days?: string; dev?: boolean; 'new-ca'?: boolean; help?: boolean };
  try {
    values = parseFlags('certs', argv, {
      service: { type: 'string' },
      namespace: { type: 'string' },
      out: { type: 'string' },
      days: { type: 'string' },
      dev: { type: 'boolean' },
      'new-ca': { type: 'boolean' },
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
  const prev = previousCertificates(values.out, days);
  if (prev.unusable && !values['new-ca']) return fail(prev.unusable);
  const reuse = prev.ca && !values['new-ca'] ? prev.ca : undefined;
  // A reused CA keeps the older CAs its bundle carried; a new one keeps every CA of the old bundle still valid.
  const previousCas = reuse ? prev.stillValid.filter((pem) => pem.trim() !== reuse.cert.trim()) : prev.stillValid;
  let certs: GeneratedCerts;
  try {
    certs = await generateCertificates({ service: values.service, namespace: values.namespace, days, dev: values.dev === true, ca: reuse, previousCas });
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
  const caUntil = new NodeX509(pemCertificates(certs.caCert)[0]!).validTo;
  const ca = reuse
    ? `the CA already in ${values.out} signed it (valid until ${caUntil}; caBundle is unchanged)`
    : `with a new CA (valid until ${caUntil}${prev.why && !values['new-ca'] && prev.stillValid.length ? `; ${prev.why}` : ''})` +
      (previousCas.length ? `; ca.crt also holds ${previousCas.length} previous CA certificate(s), so pods still serving the old certificate verify during the rollout` : '');
  process.stdout.write(
    `Wrote ${['ca.crt', 'ca.key', 'tls.crt', 'tls.key'].map((f) => join(values.out!, f)).join(', ')}: ` +
      `a serving certificate valid ${days} days for ${names.join(', ')}, ${ca}\n` +
      `caBundle: base64 < ${join(values.out, 'ca.crt')} | tr -d '\\n' (the webhook configurations' caBundle is the whole PEM file base64-encoded on one line; manifests/self-signed does it for you)\n`,
  );
  return 0;
}
