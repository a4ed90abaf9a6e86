// Certificate generation: `kagenti-webhook certs` and the dev certificates behind `serve --dev-certs`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import {
  CA_DAYS,
  certificateNames,
  checkCertificateDir,
  ensureDevCertificates,
  generateCertificates,
  pemCertificates,
  runCertsCommand,
  serviceDnsNames,
  writeCertificates,
} from '../webhook/certs.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-certs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sanList(pem: string): string[] {
  return (new X509Certificate(pem).subjectAltName ?? '').split(', ').filter(Boolean);
}

/**
 * Runs the command with stdout/stderr captured. The command writes strings; under `node --test` the runner reports
 * each test's result on this process's stdout as binary chunks while the next test runs, so those pass through
 * (captured, a test's result would be lost and the file fail).
 */
async function runCaptured(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write;
  const err = process.stderr.write;
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    if (typeof chunk !== 'string') return (out as (...a: unknown[]) => boolean).call(process.stdout, chunk, ...rest);
    stdout += chunk;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  }) as typeof process.stderr.write;
  try {
    const code = await runCertsCommand(argv);
    return { code, stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

/** One HTTPS request against a server using the pair, verified against the CA with the given server name. */
async function handshake(certs: { caCert: string; tlsCert: string; tlsKey: string }, servername: string): Promise<string> {
  const server = createServer({ cert: certs.tlsCert, key: certs.tlsKey, minVersion: 'TLSv1.2' }, (_req, res) => {
    res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/', ca: certs.caCert, servername, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(body));
      });
      req.on('error', reject);
      req.end();
    });
  } finally {
    server.close();
  }
}

test('serving certificate carries the four Service names, is signed by the CA and matches its key', async () => {
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  assert.deepEqual(sanList(certs.tlsCert), serviceDnsNames('kagenti-webhook', 'kagenti-system').map((n) => `DNS:${n}`));
  assert.deepEqual(serviceDnsNames('kagenti-webhook', 'kagenti-system'), [
    'kagenti-webhook',
    'kagenti-webhook.kagenti-system',
    'kagenti-webhook.kagenti-system.svc',
    'kagenti-webhook.kagenti-system.svc.cluster.local',
  ]);
  const ca = new X509Certificate(certs.caCert);
  const leaf = new X509Certificate(certs.tlsCert);
  assert.equal(ca.ca, true);
  assert.equal(leaf.ca, false);
  assert.ok(leaf.verify(ca.publicKey), 'leaf signed by the CA');
  assert.ok(ca.verify(ca.publicKey), 'CA is self-signed');
  assert.ok(leaf.checkIssued(ca));
  const key = createPrivateKey(certs.tlsKey);
  assert.ok(leaf.checkPrivateKey(key));
  assert.equal(key.asymmetricKeyType, 'ec');
  assert.equal(key.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.equal(leaf.checkHost('localhost'), undefined, 'no localhost without dev');
  assert.equal(leaf.checkIP('127.0.0.1'), undefined, 'no 127.0.0.1 without dev');
  assert.match(certs.tlsKey, /^-----BEGIN PRIVATE KEY-----\n/);
});

test('extensions: CA may sign certificates; serving certificate is for server auth only', async () => {
  const certs = await generateCertificates({ service: 'hook', namespace: 'ns1' });
  const ca = new x509.X509Certificate(certs.caCert);
  const leaf = new x509.X509Certificate(certs.tlsCert);
  const caBasic = ca.getExtension(x509.BasicConstraintsExtension);
  assert.ok(caBasic?.ca);
  assert.ok(caBasic?.critical);
  const caUsage = ca.getExtension(x509.KeyUsagesExtension);
  assert.ok(caUsage && (caUsage.usages & x509.KeyUsageFlags.keyCertSign) !== 0);
  const leafBasic = leaf.getExtension(x509.BasicConstraintsExtension);
  assert.equal(leafBasic?.ca, false);
  const leafUsage = leaf.getExtension(x509.KeyUsagesExtension);
  assert.ok(leafUsage && (leafUsage.usages & x509.KeyUsageFlags.keyCertSign) === 0);
  const eku = leaf.getExtension(x509.ExtendedKeyUsageExtension);
  assert.deepEqual([...(eku?.usages ?? [])], [x509.ExtendedKeyUsage.serverAuth]);
  assert.equal(leaf.issuer, ca.subject);
  assert.notEqual(leaf.serialNumber, ca.serialNumber);
});

test('validity follows --days', async () => {
  const certs = await generateCertificates({ service: 'hook', namespace: 'ns1', days: 30 });
  const leaf = new X509Certificate(certs.tlsCert);
  const days = (Date.parse(leaf.validTo) - Date.now()) / 86_400_000;
  assert.ok(days > 29 && days <= 30, `validTo ${leaf.validTo}`);
  assert.ok(Date.parse(leaf.validFrom) <= Date.now());
});

test('dev certificates add localhost and 127.0.0.1', async () => {
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system', dev: true });
  const sans = sanList(certs.tlsCert);
  assert.ok(sans.includes('DNS:localhost'));
  assert.ok(sans.includes('IP Address:127.0.0.1'));
  assert.ok(sans.includes('DNS:kagenti-webhook.kagenti-system.svc.cluster.local'));
});

test('a TLS client verifying against ca.crt accepts the Service name and refuses another name', async () => {
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  assert.equal(await handshake(certs, 'kagenti-webhook.kagenti-system.svc'), 'ok');
  assert.equal(await handshake(certs, 'kagenti-webhook.kagenti-system.svc.cluster.local'), 'ok');
  await assert.rejects(handshake(certs, 'other.kagenti-system.svc'), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
    return true;
  });
  const other = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  await assert.rejects(handshake({ ...certs, caCert: other.caCert }, 'kagenti-webhook.kagenti-system.svc'));
});

test('invalid names and validity are refused', async () => {
  await assert.rejects(generateCertificates({ service: 'Bad_Name', namespace: 'ns' }), /--service "Bad_Name"/);
  await assert.rejects(generateCertificates({ service: 'ok', namespace: 'a.b' }), /--namespace "a.b"/);
  await assert.rejects(generateCertificates({ service: 'ok', namespace: 'ns', days: 0 }), /--days 0/);
  await assert.rejects(generateCertificates({ service: 'ok', namespace: 'ns', days: 1.5 }), /--days 1.5/);
});

test('writeCertificates writes the four files, the keys with mode 0600 even over an existing file', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'tls.key'), 'old', { mode: 0o644 });
  writeFileSync(join(dir, 'ca.key'), 'old', { mode: 0o644 });
  const certs = await generateCertificates({ service: 'hook', namespace: 'ns1' });
  writeCertificates(join(dir), certs);
  assert.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), certs.caCert);
  assert.equal(readFileSync(join(dir, 'ca.key'), 'utf8'), certs.caKey);
  assert.equal(readFileSync(join(dir, 'tls.crt'), 'utf8'), certs.tlsCert);
  assert.equal(readFileSync(join(dir, 'tls.key'), 'utf8'), certs.tlsKey);
  assert.equal(statSync(join(dir, 'tls.key')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'ca.key')).mode & 0o777, 0o600);
  assert.ok(new X509Certificate(certs.caCert).checkPrivateKey(createPrivateKey(certs.caKey)), 'ca.key is the CA\'s key');
  writeCertificates(join(dir, 'a', 'b'), certs);
  assert.equal(statSync(join(dir, 'a', 'b', 'tls.key')).mode & 0o777, 0o600);
});

test('ensureDevCertificates creates once, reuses a valid set, and replaces a broken one', async (t) => {
  const dir = join(tempDir(t), 'dev');
  const first = await ensureDevCertificates(dir);
  assert.equal(first.created, true);
  assert.equal(first.certFile, join(dir, 'tls.crt'));
  assert.equal(first.keyFile, join(dir, 'tls.key'));
  assert.equal(first.caFile, join(dir, 'ca.crt'));
  const pem = readFileSync(first.certFile, 'utf8');
  const leaf = new X509Certificate(pem);
  assert.equal(leaf.checkHost('localhost'), 'localhost');
  assert.equal(leaf.checkHost('kagenti-webhook.kagenti-system.svc'), 'kagenti-webhook.kagenti-system.svc');
  assert.equal(statSync(first.keyFile).mode & 0o777, 0o600);

  const second = await ensureDevCertificates(dir);
  assert.equal(second.created, false);
  assert.equal(readFileSync(second.certFile, 'utf8'), pem, 'reused as is');

  // A key that does not belong to the certificate: regenerate.
  const stranger = await generateCertificates({ service: 'x', namespace: 'y' });
  writeFileSync(first.keyFile, stranger.tlsKey);
  assert.match(checkCertificateDir(dir) ?? '', /does not match/);
  const third = await ensureDevCertificates(dir);
  assert.equal(third.created, true);
  assert.equal(checkCertificateDir(dir), null);

  // Garbage and a missing file: regenerate, signed by the same CA.
  const caKey = readFileSync(join(dir, 'ca.key'), 'utf8');
  writeFileSync(third.certFile, 'not a certificate');
  assert.equal((await ensureDevCertificates(dir)).created, true);
  rmSync(third.keyFile);
  assert.equal((await ensureDevCertificates(dir)).created, true);
  assert.equal(checkCertificateDir(dir, ['localhost', '127.0.0.1']), null);
  assert.equal(readFileSync(join(dir, 'ca.key'), 'utf8'), caKey, 'the CA is kept');
  // Nothing left: a new CA.
  for (const f of ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']) rmSync(join(dir, f));
  assert.equal((await ensureDevCertificates(dir)).created, true);
  assert.notEqual(readFileSync(join(dir, 'ca.key'), 'utf8'), caKey);
});

test('ensureDevCertificates never replaces a CA: a set made without --dev gets a dev certificate from its CA; a ca.key it cannot sign with stops it', async (t) => {
  // the reviewer's case: `certs --out DIR` (no --dev), then `serve --dev-certs DIR` wrote a new CA over ca.key
  const dir = join(tempDir(t), 'prod');
  const made = await runCaptured(['--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir]);
  assert.equal(made.code, 0, made.stderr);
  const caKey = readFileSync(join(dir, 'ca.key'), 'utf8');
  const caCert = readFileSync(join(dir, 'ca.crt'), 'utf8');
  assert.match(checkCertificateDir(dir, ['localhost']) ?? '', /does not name localhost/);
  const dev = await ensureDevCertificates(dir);
  assert.equal(dev.created, true);
  assert.equal(readFileSync(join(dir, 'ca.key'), 'utf8'), caKey, 'ca.key kept');
  assert.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), caCert, 'ca.crt kept: the caBundle still verifies');
  assert.equal(checkCertificateDir(dir, ['localhost', '127.0.0.1', 'kagenti-webhook.kagenti-system.svc']), null);

  // a ca.key without its ca.crt, or one of another type: DIR is left as it is
  rmSync(join(dir, 'ca.crt'));
  rmSync(join(dir, 'tls.crt'));
  await assert.rejects(ensureDevCertificates(dir), /ca\.key is a CA key that cannot sign a development certificate \(no ca\.crt\), and it is not replaced\. Fix: use another directory for --dev-certs/);
  assert.equal(readFileSync(join(dir, 'ca.key'), 'utf8'), caKey);
  assert.ok(!existsSync(join(dir, 'ca.crt')) && !existsSync(join(dir, 'tls.crt')), 'nothing written');
});

test('certs command writes the files and reports them', async (t) => {
  const dir = join(tempDir(t), 'out');
  const r = await runCaptured(['--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir, '--days', '10', '--dev']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.match(r.stdout, /tls\.key/);
  const leaf = new X509Certificate(readFileSync(join(dir, 'tls.crt')));
  assert.equal(leaf.checkIP('127.0.0.1'), '127.0.0.1');
  assert.ok((Date.parse(leaf.validTo) - Date.now()) / 86_400_000 <= 10);
  assert.equal(statSync(join(dir, 'tls.key')).mode & 0o777, 0o600);
  assert.equal(checkCertificateDir(dir, ['kagenti-webhook.kagenti-system.svc']), null);
});

test('certs command renews with the same CA, so caBundle stays and both the old and new certificates verify', async (t) => {
  const dir = join(tempDir(t), 'out');
  const args = ['--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir];
  assert.equal((await runCaptured(args)).code, 0);
  const bundle1 = readFileSync(join(dir, 'ca.crt'), 'utf8');
  const leaf1 = readFileSync(join(dir, 'tls.crt'), 'utf8');
  const caDays = (Date.parse(new X509Certificate(bundle1).validTo) - Date.now()) / 86_400_000;
  assert.ok(caDays > 3640, `a new CA is valid ten years, got ${caDays} days`);
  const r = await runCaptured(args);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /the CA already in .* signed it \(valid until .*; caBundle is unchanged\)/);
  assert.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), bundle1, 'ca.crt unchanged');
  const leaf2 = readFileSync(join(dir, 'tls.crt'), 'utf8');
  assert.notEqual(leaf2, leaf1);
  const key2 = readFileSync(join(dir, 'tls.key'), 'utf8');
  // pods still serving the old certificate and pods with the new one both pass the API server's check
  for (const leaf of [leaf1, leaf2]) assert.ok(new X509Certificate(leaf).verify(new X509Certificate(bundle1).publicKey));
  assert.equal(await handshake({ caCert: bundle1, tlsCert: leaf2, tlsKey: key2 }, 'kagenti-webhook.kagenti-system.svc'), 'ok');

  // A new CA (--new-ca, or a missing or mismatched ca.key): ca.crt keeps the previous CA while it is valid.
  const n = await runCaptured([...args, '--new-ca']);
  assert.equal(n.code, 0, n.stderr);
  assert.match(n.stdout, /with a new CA .*ca\.crt also holds 1 previous CA certificate/);
  const bundle3 = readFileSync(join(dir, 'ca.crt'), 'utf8');
  assert.equal(pemCertificates(bundle3).length, 2);
  assert.equal(pemCertificates(bundle3)[1]!.trim(), bundle1.trim());
  const leaf3 = readFileSync(join(dir, 'tls.crt'), 'utf8');
  assert.equal(await handshake({ caCert: bundle3, tlsCert: leaf3, tlsKey: readFileSync(join(dir, 'tls.key'), 'utf8') }, 'kagenti-webhook.kagenti-system.svc'), 'ok');
  assert.equal(await handshake({ caCert: bundle3, tlsCert: leaf2, tlsKey: key2 }, 'kagenti-webhook.kagenti-system.svc'), 'ok', 'the old certificate still verifies against the new bundle');
  // Renewing again keeps both.
  assert.equal((await runCaptured(args)).code, 0);
  assert.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), bundle3);
  writeFileSync(join(dir, 'ca.key'), (await generateCertificates({ service: 'x', namespace: 'y' })).caKey);
  const m = await runCaptured(args);
  assert.match(m.stdout, /with a new CA \(valid until [^;]*; ca\.key does not match ca\.crt\); ca\.crt also holds 2 previous/);
});

test('certs command: usage errors exit 2 with one line on stderr', async (t) => {
  const dir = tempDir(t);
  const cases: Array<[string[], RegExp]> = [
    [['--namespace', 'ns', '--out', dir], /--service NAME is required/],
    [['--service', 'svc', '--out', dir], /--namespace NS is required/],
    [['--service', 'svc', '--namespace', 'ns'], /--out DIR is required/],
    [['--service', 'svc', '--namespace', 'ns', '--out', dir, '--days', 'ten'], /--days "ten"/],
    [['--service', 'svc', '--namespace', 'ns', '--out', dir, '--days', '0'], /--days 0/],
    [['--service', 'svc', '--namespace', 'ns', '--out', dir, '--days', '99999'], /--days 99999/],
    [['--service', 'Svc!', '--namespace', 'ns', '--out', dir], /not a valid Service name/],
    [['--service', 'svc', '--namespace', 'ns', '--out', dir, '--bogus'], /--bogus/],
    [['--service', 'svc', '--namespace', 'ns', '--out', dir, 'extra'], /extra/],
    [['--service'], /--service/],
    [['--service', 'svc', '--namespace', 'ns', '--out', join(dir, 'file', 'sub')], /cannot write to/],
  ];
  writeFileSync(join(dir, 'file'), 'x');
  for (const [argv, pattern] of cases) {
    const r = await runCaptured(argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: exit code`);
    assert.match(r.stderr, pattern, argv.join(' '));
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line for ${argv.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  const help = await runCaptured(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--service NAME --namespace NS --out DIR/);
});

test('certs command signs with a CA of the user\'s own in SEC1 form ("EC PRIVATE KEY", as openssl writes it), and names the file and the fix for a key it cannot sign with', async (t) => {
  const args = (dir: string) => ['--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir];
  // a P-256 CA whose key file is SEC1: used as it is, and the file is left in its form
  const sec1 = join(tempDir(t), 'sec1');
  assert.equal((await runCaptured(args(sec1))).code, 0);
  const sec1Key = createPrivateKey(readFileSync(join(sec1, 'ca.key'), 'utf8')).export({ type: 'sec1', format: 'pem' }) as string;
  writeFileSync(join(sec1, 'ca.key'), sec1Key);
  const bundle = readFileSync(join(sec1, 'ca.crt'), 'utf8');
  const r = await runCaptured(args(sec1));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /the CA already in .* signed it/);
  assert.equal(readFileSync(join(sec1, 'ca.key'), 'utf8'), sec1Key);
  assert.ok(new X509Certificate(readFileSync(join(sec1, 'tls.crt'), 'utf8')).verify(new X509Certificate(bundle).publicKey));

  // an RSA CA: not replaced behind the user's back; the message names the file and both ways out
  const rsa = join(tempDir(t), 'rsa');
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = (await crypto.subtle.generateKey(alg, true, ["sign", "verify"])) as import("node:crypto").webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=my-rsa-ca',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3650 * 86_400_000),
    keys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true)],
  });
  const pkcs8 = Buffer.from(await crypto.subtle.exportKey('pkcs8', keys.privateKey));
  mkdirSync(rsa);
  writeFileSync(join(rsa, 'ca.crt'), ca.toString('pem') + '\n');
  writeFileSync(join(rsa, 'ca.key'), x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n');
  const bad = await runCaptured(args(rsa));
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr.trim(),
    `kagenti-webhook certs: ${join(rsa, 'ca.key')} is an RSA key; certs signs only with an ECDSA P-256 CA. Fix: put a P-256 CA in ${rsa} (openssl ecparam -name prime256v1 -genkey), or pass --new-ca to make a new CA (the webhook configurations' caBundle changes then) (see kagenti-webhook certs --help)`,
  );
  assert.equal(readFileSync(join(rsa, 'ca.crt'), 'utf8'), ca.toString('pem') + '\n', 'nothing written');
  assert.equal((await runCaptured([...args(rsa), '--new-ca'])).code, 0);
});

const HAVE_OPENSSL = spawnSync('openssl', ['version']).status === 0;
const HAVE_KUBECTL = spawnSync('kubectl', ['version', '--client']).status === 0;

/** A CA as the user makes one with openssl (certs/README.md): its subject CN is a UTF8String. */
function opensslCa(dir: string): void {
  mkdirSync(dir, { recursive: true });
  for (const args of [
    ['ecparam', '-name', 'prime256v1', '-genkey', '-out', join(dir, 'ca.key')],
    ['req', '-x509', '-new', '-key', join(dir, 'ca.key'), '-subj', '/CN=my-ca', '-days', '3700', '-out', join(dir, 'ca.crt')],
  ]) {
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }
}

/**
 * `kubectl get --raw /healthz` against an HTTPS server with the pair, trusting `caFile` for the Service name: kubectl
 * verifies with Go's crypto/x509, as the API server does with caBundle. Returns kubectl's output (or its error).
 */
async function kubectlGet(dir: string, caFile: string, pair: { tlsCert: string; tlsKey: string }): Promise<string> {
  const server = createServer({ cert: pair.tlsCert, key: pair.tlsKey, minVersion: 'TLSv1.2' }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters:\n- name: wh\n  cluster:\n    server: https://127.0.0.1:${port}\n    certificate-authority: ${caFile}\n` +
      `    tls-server-name: kagenti-webhook.kagenti-system.svc\ncontexts:\n- name: wh\n  context: {cluster: wh, user: u}\nusers:\n- name: u\n  user: {token: unused}\ncurrent-context: wh\n`,
  );
  try {
    return await new Promise<string>((resolve) => {
      const child = execFile('kubectl', ['--kubeconfig', kubeconfig, 'get', '--raw', '/healthz'], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) =>
        resolve(err ? `error: ${stderr || err.message}` : stdout),
      );
      child.stdin?.end();
    });
  } finally {
    server.close();
  }
}

test("a CA of the user's own made with openssl (UTF8String subject): the serving certificate's issuer is its subject byte for byte, and kubectl (Go's x509) trusts it", { skip: (!HAVE_OPENSSL || !HAVE_KUBECTL) && 'needs openssl and kubectl' }, async (t) => {
  const dir = join(tempDir(t), 'own');
  opensslCa(dir);
  const r = await runCaptured(['--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /the CA already in .* signed it/);
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
  const leaf = new X509Certificate(readFileSync(join(dir, 'tls.crt')));
  assert.ok(certificateNames(leaf.raw).issuer.equals(certificateNames(ca.raw).subject), 'issuer == CA subject, raw DER');
  assert.ok(certificateNames(ca.raw).subject.includes(Buffer.from([0x0c, 0x05, ...Buffer.from('my-ca')])), 'openssl wrote a UTF8String');
  const pair = { tlsCert: readFileSync(join(dir, 'tls.crt'), 'utf8'), tlsKey: readFileSync(join(dir, 'tls.key'), 'utf8') };
  assert.equal(await kubectlGet(dir, join(dir, 'ca.crt'), pair), 'ok');

  // serve --dev-certs with such a CA in the directory: the dev certificate it signs verifies too
  const devDir = join(tempDir(t), 'dev');
  opensslCa(devDir);
  const dev = await ensureDevCertificates(devDir);
  assert.equal(dev.created, true);
  const devPair = { tlsCert: readFileSync(dev.certFile, 'utf8'), tlsKey: readFileSync(dev.keyFile, 'utf8') };
  assert.equal(await kubectlGet(devDir, dev.caFile, devPair), 'ok');
});

test("serve --dev-certs replaces a dev certificate whose issuer is the CA's subject re-encoded (as earlier versions wrote it for an openssl CA)", { skip: !HAVE_OPENSSL && 'needs openssl' }, async (t) => {
  const dir = join(tempDir(t), 'dev');
  opensslCa(dir);
  await ensureDevCertificates(dir);
  // the same certificate, but with the issuer rebuilt from the CA's subject text (PrintableString), signed by the CA
  const ca = new x509.X509Certificate(readFileSync(join(dir, 'ca.crt'), 'utf8'));
  const leaf = new x509.X509Certificate(readFileSync(join(dir, 'tls.crt'), 'utf8'));
  const caKey = await crypto.subtle.importKey('pkcs8', new Uint8Array(createPrivateKey(readFileSync(join(dir, 'ca.key'))).export({ type: 'pkcs8', format: 'der' })), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const old = await x509.X509CertificateGenerator.create({
    serialNumber: leaf.serialNumber,
    subject: leaf.subject,
    issuer: ca.subject,
    notBefore: leaf.notBefore,
    notAfter: leaf.notAfter,
    publicKey: leaf.publicKey,
    signingKey: caKey,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [...leaf.extensions],
  });
  writeFileSync(join(dir, 'tls.crt'), old.toString('pem') + '\n');
  assert.ok(new X509Certificate(old.toString('pem')).verify(new X509Certificate(ca.toString('pem')).publicKey), 'OpenSSL still verifies it');
  assert.equal(checkCertificateDir(dir), "tls.crt's issuer is not ca.crt's subject byte for byte, so Go clients (the API server) do not find the CA");
  assert.equal((await ensureDevCertificates(dir)).created, true);
  assert.equal(checkCertificateDir(dir, ['localhost']), null);
});

test('certificateNames reads the issuer and subject of a certificate as encoded', async () => {
  const certs = await generateCertificates({ service: 'hook', namespace: 'ns1' });
  const ca = new X509Certificate(certs.caCert);
  const leaf = new X509Certificate(certs.tlsCert);
  const caNames = certificateNames(ca.raw);
  assert.ok(caNames.issuer.equals(caNames.subject), 'self-signed');
  assert.ok(certificateNames(leaf.raw).issuer.equals(caNames.subject));
  assert.equal(new x509.Name(certificateNames(leaf.raw).subject).toString(), 'CN=hook.ns1.svc');
});

test('certs --days 3650 (the maximum) twice: a new CA outlives the longest serving certificate, so the second run reuses it and ca.crt stays', async (t) => {
  const dir = join(tempDir(t), 'out');
  const args = ['--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir, '--days', '3650'];
  for (const days of ['3650', '3649']) {
    const first = await runCaptured([...args.slice(0, -1), days, '--new-ca']);
    assert.equal(first.code, 0, first.stderr);
    const bundle = readFileSync(join(dir, 'ca.crt'), 'utf8');
    const caDays = (Date.parse(new X509Certificate(bundle).validTo) - Date.now()) / 86_400_000;
    assert.ok(caDays > CA_DAYS - 1 && caDays <= CA_DAYS, `a new CA is valid ${CA_DAYS} days, got ${caDays}`);
    const again = await runCaptured([...args.slice(0, -1), days]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /the CA already in .* signed it \(valid until .*; caBundle is unchanged\)/, `--days ${days}`);
    assert.equal(readFileSync(join(dir, 'ca.crt'), 'utf8'), bundle, `--days ${days}: ca.crt unchanged`);
  }
});

test('certs says how caBundle is made from ca.crt (base64 of the PEM file), in its output and --help', async (t) => {
  const dir = join(tempDir(t), 'out');
  const r = await runCaptured(['--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.equal(lines.length, 2);
  assert.equal(lines[1], `caBundle: base64 < ${join(dir, 'ca.crt')} | tr -d '\\n' (the webhook configurations' caBundle is the whole PEM file base64-encoded on one line; manifests/self-signed does it for you)`);
  // the command it prints gives what the API server decodes back to ca.crt
  const out = spawnSync('sh', ['-c', `base64 < '${join(dir, 'ca.crt')}' | tr -d '\\n'`], { encoding: 'utf8' }).stdout;
  assert.doesNotMatch(out, /\n/);
  assert.equal(Buffer.from(out, 'base64').toString('utf8'), readFileSync(join(dir, 'ca.crt'), 'utf8'));
  const help = await runCaptured(['--help']);
  assert.match(help.stdout, /caBundle is ca\.crt base64-encoded, the whole PEM file on one\nline \(base64 < DIR\/ca\.crt \| tr -d '\\n'/);
});

test('certs refuses a Service name that is no RFC 1035 label, and says how to pass a value starting with -', async (t) => {
  const dir = tempDir(t);
  const bad = await runCaptured(['--service', '1webhook', '--namespace', 'ns', '--out', dir]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^kagenti-webhook certs: --service "1webhook" is not a valid Service name \(an RFC 1035 label: lowercase letters, digits and '-', starting with a letter, at most 63 characters\)/);
  assert.ok(!existsSync(join(dir, 'ca.crt')), 'nothing written');
  // a namespace may start with a digit (RFC 1123)
  assert.equal((await runCaptured(['--service', 'webhook', '--namespace', '1ns', '--out', dir])).code, 0);
  const neg = await runCaptured(['--service', 'svc', '--namespace', 'ns', '--out', dir, '--days', '-1']);
  assert.equal(neg.code, 2);
  assert.equal(neg.stderr, "kagenti-webhook certs: Option '--days' takes no value starting with '-' this way: write --days=VALUE (see kagenti-webhook certs --help)\n");
  const eq = await runCaptured(['--service', 'svc', '--namespace', 'ns', '--out', dir, '--days=-1']);
  assert.equal(eq.code, 2);
  assert.match(eq.stderr, /--days "-1" is not a whole number of days/);
});
