// What the server serves: certificates the API server can never accept are refused at start-up (exit 2) and at
// reload (the previous pair stays), those it accepts only in some setups are served with a warning, and TLS 1.2
// offers ECDHE with AES-GCM or ChaCha20-Poly1305 only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateCertificates, writeCertificates } from '../webhook/certs.ts';
import { CIPHERS, CertificateReloader, servingProblems } from '../webhook/tls.ts';
import { BIN, ROOT, SERVER_NAME, capturingLogger, selfSignedPair } from './helpers.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-tls-serving-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}


/** A self-signed pair with the given extensions. */
const selfSigned = (extensions: x509.Extension[]) => selfSignedPair({ extensions });

const svc = new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: SERVER_NAME }]);

function write(dir: string, p: { cert: string; key: string }): void {
  writeFileSync(join(dir, 'tls.crt'), p.cert);
  writeFileSync(join(dir, 'tls.key'), p.key);
}

test('servingProblems: a CA certificate naming no host and one without subjectAltName are refused; a self-signed CA:TRUE naming hosts, no serverAuth or no Service name are warnings', async () => {
  const checks = async (ext: x509.Extension[]) =>
    servingProblems(new X509Certificate((await selfSigned(ext)).cert), 'tls.crt').map((p) => `${p.check}:${p.refuse ? 'refuse' : 'warn'}`);
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system', dev: true });
  assert.deepEqual(servingProblems(new X509Certificate(certs.tlsCert), 'tls.crt'), [], 'what certs writes is fine');
  assert.deepEqual(servingProblems(new X509Certificate(certs.caCert), 'ca.crt').map((p) => `${p.check}:${p.refuse ? 'refuse' : 'warn'}`), ['ca-certificate:refuse']);
  assert.deepEqual(await checks([svc]), [], 'no extended key usage at all: any use, the API server accepts it');
  assert.deepEqual(await checks([]), ['no-subject-alt-name:refuse']);
  // what openssl req -x509 writes: CA:TRUE on a self-signed certificate naming the Service, which the API server
  // accepts when caBundle is that certificate
  assert.deepEqual(await checks([new x509.BasicConstraintsExtension(true, undefined, true), svc]), ['ca-certificate:warn']);
  assert.deepEqual(await checks([svc, new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])]), ['no-server-auth:warn']);
  assert.deepEqual(await checks([svc, new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth])]), []);
  assert.deepEqual(await checks([new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }, { type: 'ip', value: '127.0.0.1' }])]), ['no-service-name:warn']);
  assert.deepEqual(await checks([new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])]), ['no-service-name:warn']);

  const [ca] = servingProblems(new X509Certificate(certs.caCert), '/certs/ca.crt');
  assert.match(ca!.message, /^TLS certificate \/certs\/ca\.crt is a CA certificate \(basicConstraints CA:TRUE\) that names no host, not a serving certificate: .* Fix: serve the certificate cert-manager issues/);
  for (const p of [...servingProblems(new X509Certificate(certs.caCert), 'x'), ...servingProblems(new X509Certificate((await selfSigned([])).cert), 'x')])
    assert.ok(!p.message.includes('\n'), `one line: ${p.message}`);
});

test('load refuses a CA certificate and one without subjectAltName in one line; warns once per problem otherwise, and the loaded line carries the SANs', async (t) => {
  const dir = tempDir(t);
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  const mk = (log = capturingLogger().log) => new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log });
  write(dir, { cert: certs.caCert, key: certs.caKey });
  assert.throws(() => mk().load(), /^Error: TLS certificate \S+tls\.crt is a CA certificate \(basicConstraints CA:TRUE\)/);
  write(dir, await selfSigned([]));
  assert.throws(() => mk().load(), /names no DNS name or IP address \(subjectAltName\), only its subject "CN=kagenti-webhook\.kagenti-system\.svc": the API server ignores the CN/);

  write(dir, await selfSigned([new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'localhost' }]), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])]));
  const { log, lines } = capturingLogger();
  mk(log).load();
  const warned = lines().filter((l) => l.level === 40);
  assert.deepEqual(warned.map((l) => l.check), ['no-server-auth', 'no-service-name']);
  assert.match(String(warned[0]!.msg), /does not allow server authentication .* Fix: /);
  assert.match(String(warned[1]!.msg), /names no Service \(no DNS name ending in \.svc; it names localhost\)/);
  assert.equal(lines().find((l) => l.msg === 'loaded TLS certificate')?.subjectAltName, 'DNS:localhost');

  writeCertificates(dir, certs);
  const good = capturingLogger();
  mk(good.log).load();
  assert.deepEqual(good.lines().filter((l) => l.level >= 40), []);
  assert.equal(good.lines().find((l) => l.msg === 'loaded TLS certificate')?.subjectAltName, 'DNS:kagenti-webhook, DNS:kagenti-webhook.kagenti-system, DNS:kagenti-webhook.kagenti-system.svc, DNS:kagenti-webhook.kagenti-system.svc.cluster.local');
});

test('reload keeps serving the previous pair when the new one is a CA certificate; a new pair with a warning is installed and warned about', async (t) => {
  const dir = tempDir(t);
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  writeCertificates(dir, certs);
  const { log, lines } = capturingLogger();
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log, pollMs: 3_600_000 });
  reloader.load();
  t.after(() => reloader.close());
  write(dir, { cert: certs.caCert, key: certs.caKey });
  assert.equal(reloader.reloadNow(), false);
  assert.equal(reloader.serverOptions().cert, certs.tlsCert, 'still the previous certificate');
  assert.ok(lines().some((l) => l.level === 50 && /is a CA certificate/.test(String((l.err as { message?: string } | undefined)?.message))));
  write(dir, await selfSigned([new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])]));
  assert.equal(reloader.reloadNow(), true);
  assert.deepEqual(lines().filter((l) => l.level === 40).map((l) => l.check), ['no-service-name']);
  assert.equal(lines().find((l) => /^reloaded TLS certificate/.test(String(l.msg)))?.subjectAltName, 'IP Address:127.0.0.1');
});

test('serve refuses a CA certificate as its serving certificate: exit 2, one line', { skip: !existsSync(join(ROOT, 'dist', 'cli.js')) && 'needs the build (npm test builds first)' }, async (t) => {
  const dir = tempDir(t);
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  writeCertificates(dir, certs);
  const r = spawnSync(
    process.execPath,
    [BIN, 'serve', '--tls-cert', join(dir, 'ca.crt'), '--tls-key', join(dir, 'ca.key'), '--cluster', 'none', '--port', '19401', '--probe-port', '19402'],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /TLS certificate \S+ca\.crt is a CA certificate \(basicConstraints CA:TRUE\)/);
  assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
});

/** The TLS 1.2 handshake's outcome with the one cipher suite the client offers: the suite, or the error code. */
function tls12With(port: number, ca: string, cipher: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: SERVER_NAME, ca, maxVersion: 'TLSv1.2', ciphers: cipher }, () => {
      resolve(s.getCipher().standardName);
      s.end();
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code ?? err.message}`));
  });
}

test('TLS 1.2 offers ECDHE with AES-GCM or ChaCha20-Poly1305 only (no CBC, no SHA-1), also after a reload; TLS 1.3 as before', async (t) => {
  const dir = tempDir(t);
  const certs = await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });
  writeCertificates(dir, certs);
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log: capturingLogger().log, pollMs: 3_600_000 });
  const server = https.createServer(reloader.serverOptions(), (_req, res) => res.end('ok'));
  reloader.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    reloader.close();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  const check = async () => {
    for (const weak of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES256-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-ECDSA-AES256-SHA384'])
      assert.match(await tls12With(port, certs.caCert, weak), /^error /, weak);
    assert.equal(await tls12With(port, certs.caCert, 'ECDHE-ECDSA-AES128-GCM-SHA256'), 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256');
    assert.equal(await tls12With(port, certs.caCert, 'ECDHE-ECDSA-AES256-GCM-SHA384'), 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384');
    assert.equal(await tls12With(port, certs.caCert, 'ECDHE-ECDSA-CHACHA20-POLY1305'), 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256');
    const v13 = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: SERVER_NAME, ca: certs.caCert }, () => {
        resolve(`${s.getProtocol()} ${s.getCipher().standardName}`);
        s.end();
      });
      s.on('error', reject);
    });
    assert.match(v13, /^TLSv1\.3 TLS_(AES_256_GCM_SHA384|AES_128_GCM_SHA256|CHACHA20_POLY1305_SHA256)$/);
  };
  await check();
  writeCertificates(dir, await generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system', ca: { cert: certs.caCert, key: certs.caKey } }));
  assert.equal(reloader.reloadNow(), true);
  await check();
  for (const suite of CIPHERS.split(':').filter((c) => !c.startsWith('TLS_'))) assert.match(suite, /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
});
