// Certificate reloading: CertificateReloader on its own, then the real server process under a steady
// admission load while its certificate files are swapped (plain rewrite, a half-written pair, and the
// kubelet's `..data` symlink swap that cert-manager renewals go through).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { generateCertificates, writeCertificates, type GeneratedCerts } from '../webhook/certs.ts';
import { CertificateReloader } from '../webhook/tls.ts';
import { SERVER_NAME, capturingLogger } from './helpers.ts';
import { startLoad, startServerProcess, waitFor } from './server-process.ts';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kagenti-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}


const serialOf = (pem: string) => new X509Certificate(pem).serialNumber;

/** Opens a new TLS connection and returns the serial of the certificate the server presented. */
function handshakeSerial(port: number, ca: string[], extra: https.RequestOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/', ca, servername: SERVER_NAME, agent: false, ...extra },
      (res) => {
        const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
        res.resume();
        res.on('end', () => resolve(serial));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function inProcessServer(reloader: CertificateReloader): Promise<{ server: https.Server; port: number }> {
  const server = https.createServer(reloader.serverOptions(), (_req, res) => res.end('ok'));
  reloader.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

const newCerts = () => generateCertificates({ service: 'kagenti-webhook', namespace: 'kagenti-system' });

test('load: one clear line for a missing file, a non-PEM file and a key that does not match', async (t) => {
  const dir = tempDir(t);
  const a = await newCerts();
  const b = await newCerts();
  const { log } = capturingLogger('debug');
  const mk = () => new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log });
  assert.throws(() => mk().load(), { message: `cannot read TLS certificate ${join(dir, 'tls.crt')}: no such file` });
  writeFileSync(join(dir, 'tls.crt'), 'hello');
  writeFileSync(join(dir, 'tls.key'), a.tlsKey);
  assert.throws(() => mk().load(), { message: `TLS certificate ${join(dir, 'tls.crt')} is not a PEM certificate` });
  writeFileSync(join(dir, 'tls.crt'), a.tlsCert);
  writeFileSync(join(dir, 'tls.key'), a.tlsCert);
  assert.throws(() => mk().load(), { message: `TLS key ${join(dir, 'tls.key')} is not a PEM private key` });
  writeFileSync(join(dir, 'tls.key'), b.tlsKey);
  assert.throws(() => mk().load(), { message: `TLS key ${join(dir, 'tls.key')} does not match certificate ${join(dir, 'tls.crt')}` });
  writeFileSync(join(dir, 'tls.key'), a.tlsKey);
  const r = mk();
  r.load();
  const o = r.serverOptions();
  assert.equal(o.minVersion, 'TLSv1.2');
  assert.equal(o.cert, a.tlsCert);
  assert.equal(o.key, a.tlsKey);
  assert.equal(o.requestCert, undefined);
  const withCa = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), clientCaFile: join(dir, 'nope.crt'), log });
  assert.throws(() => withCa.load(), { message: `cannot read client CA ${join(dir, 'nope.crt')}: no such file` });
});

test('a TLS 1.1 client is refused; TLS 1.3 is negotiated when offered', async (t) => {
  const dir = tempDir(t);
  const a = await newCerts();
  writeCertificates(dir, a);
  const { log } = capturingLogger('debug');
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log });
  const { server, port } = await inProcessServer(reloader);
  t.after(() => {
    reloader.close();
    server.close();
  });
  await assert.rejects(handshakeSerial(port, [a.caCert], { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }));
  const protocol = await new Promise<string | null>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/', ca: [a.caCert], servername: SERVER_NAME, agent: false }, (res) => {
      resolve((res.socket as TLSSocket).getProtocol());
      res.resume();
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(protocol, 'TLSv1.3');
});

test('--client-ca: clients without a certificate from that CA are refused', async (t) => {
  const dir = tempDir(t);
  const a = await newCerts();
  writeCertificates(dir, a);
  // A client CA and a client certificate (clientAuth) signed by it, as the API server would present.
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const caKeys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const clientCa = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=apiserver-client-ca',
    keys: caKeys,
    signingAlgorithm: alg,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const clientKeys = await crypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const clientCert = await x509.X509CertificateGenerator.create({
    subject: 'CN=kube-apiserver',
    issuer: clientCa.subject,
    publicKey: clientKeys.publicKey,
    signingKey: caKeys.privateKey,
    signingAlgorithm: alg,
    extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
  });
  const clientKey = x509.PemConverter.encode(await crypto.subtle.exportKey('pkcs8', clientKeys.privateKey), 'PRIVATE KEY');
  writeFileSync(join(dir, 'client-ca.crt'), clientCa.toString('pem'));

  const { log } = capturingLogger('debug');
  const reloader = new CertificateReloader({
    certFile: join(dir, 'tls.crt'),
    keyFile: join(dir, 'tls.key'),
    clientCaFile: join(dir, 'client-ca.crt'),
    log,
  });
  const o = reloader.serverOptions();
  assert.equal(o.requestCert, true);
  assert.equal(o.rejectUnauthorized, true);
  const { server, port } = await inProcessServer(reloader);
  t.after(() => {
    reloader.close();
    server.close();
  });
  assert.equal(await handshakeSerial(port, [a.caCert], { cert: clientCert.toString('pem'), key: clientKey }), serialOf(a.tlsCert));
  await assert.rejects(handshakeSerial(port, [a.caCert]));
  const stranger = await newCerts(); // a certificate from another CA
  await assert.rejects(handshakeSerial(port, [a.caCert], { cert: stranger.tlsCert, key: stranger.tlsKey }));
});

test('reload: a mismatched pair is ignored with an error log; the next valid pair is served', async (t) => {
  const dir = tempDir(t);
  const a = await newCerts();
  const b = await newCerts();
  const c = await newCerts();
  writeCertificates(dir, a);
  const { log, lines } = capturingLogger('debug');
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log, pollMs: 50 });
  const { server, port } = await inProcessServer(reloader);
  t.after(() => {
    reloader.close();
    server.close();
  });
  const cas = [a.caCert, b.caCert, c.caCert];
  assert.equal(await handshakeSerial(port, cas), serialOf(a.tlsCert));

  // Half-written: the new certificate, the old key.
  writeFileSync(join(dir, 'tls.crt'), b.tlsCert);
  await waitFor(() => lines().some((l) => l.level === 50 && /does not match/.test(String((l.err as { message?: string } | undefined)?.message))), 'an error log about the mismatched pair');
  assert.equal(reloader.reloadNow(), false);
  assert.equal(await handshakeSerial(port, cas), serialOf(a.tlsCert), 'still serving the old pair');
  assert.equal(lines().filter((l) => l.level === 50).length, 1, 'the same bad pair is logged once, not on every poll');

  // Garbage in the key file: still the old pair.
  writeFileSync(join(dir, 'tls.key'), '-----BEGIN PRIVATE KEY-----\ntruncated');
  assert.equal(reloader.reloadNow(), false);
  assert.equal(await handshakeSerial(port, cas), serialOf(a.tlsCert));

  // The key arrives: the pair is complete.
  writeFileSync(join(dir, 'tls.key'), b.tlsKey);
  await waitFor(async () => (await handshakeSerial(port, cas)) === serialOf(b.tlsCert), 'the new certificate');
  assert.equal(reloader.reloadCount(), 1);
  assert.ok(lines().some((l) => /reloaded TLS certificate/.test(String(l.msg)) && l.serial === serialOf(b.tlsCert)));

  // A removed file is an error log, not a crash; the pair reappears.
  rmSync(join(dir, 'tls.crt'));
  assert.equal(reloader.reloadNow(), false);
  assert.equal(await handshakeSerial(port, cas), serialOf(b.tlsCert));
  writeCertificates(dir, c);
  await waitFor(async () => (await handshakeSerial(port, cas)) === serialOf(c.tlsCert), 'the third certificate');
});

/** Lays out DIR as the kubelet does for a Secret volume: DIR/..<ts>/files, DIR/..data -> ..<ts>, DIR/f -> ..data/f. */
function kubeletVolume(dir: string, certs: GeneratedCerts, generation: number, first: boolean): void {
  const ts = `..2026_01_01_00_00_0${generation}.${1000 + generation}`;
  writeCertificates(join(dir, ts), certs);
  symlinkSync(ts, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data')); // the atomic swap
  if (first) {
    for (const f of ['ca.crt', 'tls.crt', 'tls.key']) symlinkSync(join('..data', f), join(dir, f));
  }
}

test('reload: the kubelet ..data symlink swap is picked up by the directory watch', async (t) => {
  const dir = tempDir(t);
  const a = await newCerts();
  const b = await newCerts();
  kubeletVolume(dir, a, 1, true);
  const { log } = capturingLogger('debug');
  // A poll interval far longer than the test: only the watch can pick the change up.
  const reloader = new CertificateReloader({ certFile: join(dir, 'tls.crt'), keyFile: join(dir, 'tls.key'), log, pollMs: 3_600_000 });
  const { server, port } = await inProcessServer(reloader);
  t.after(() => {
    reloader.close();
    server.close();
  });
  assert.equal(await handshakeSerial(port, [a.caCert, b.caCert]), serialOf(a.tlsCert));
  kubeletVolume(dir, b, 2, false);
  await waitFor(async () => (await handshakeSerial(port, [a.caCert, b.caCert])) === serialOf(b.tlsCert), 'the swapped certificate');
});

test('server process under steady load: in-place rewrites and a half-written pair fail no request', async (t) => {
  const dir = tempDir(t);
  const gens = [await newCerts(), await newCerts(), await newCerts(), await newCerts()];
  const cas = gens.map((g) => g.caCert);
  const plain = join(dir, 'plain');
  mkdirSync(plain);
  writeCertificates(plain, gens[0]!);
  const proc = await startServerProcess(['--tls-cert', join(plain, 'tls.crt'), '--tls-key', join(plain, 'tls.key'), '--drain-seconds', '0']);
  t.after(() => proc.kill('SIGKILL'));

  const load = startLoad({ port: proc.port, ca: cas, fresh: 4, keepAlive: 4 });
  const seen = (g: GeneratedCerts) => load.stats.serials.includes(serialOf(g.tlsCert));
  const okAfter = async (n: number) => {
    const target = load.stats.ok + n;
    await waitFor(() => load.stats.ok >= target, `${n} more successful requests`);
  };
  await waitFor(() => seen(gens[0]!), 'the first certificate');
  await okAfter(50);

  // 1. Rewrite both files in place.
  writeCertificates(plain, gens[1]!);
  await waitFor(() => seen(gens[1]!), 'the second certificate on a new handshake');
  await okAfter(50);

  // 2. Half-written: certificate first, key later. The old pair keeps serving meanwhile.
  writeFileSync(join(plain, 'tls.crt'), gens[2]!.tlsCert);
  // wait until the reloader has seen the mismatched pair (it debounces file events), not for a request count
  await waitFor(() => /ignoring new TLS files until they form a valid pair/.test(proc.output()), 'the half-written pair to be noticed');
  await okAfter(100);
  assert.equal(seen(gens[2]!), false, 'a certificate without its key is never served');
  writeFileSync(join(plain, 'tls.key'), gens[2]!.tlsKey);
  await waitFor(() => seen(gens[2]!), 'the third certificate once its key arrived');
  await okAfter(50);

  const stats = await load.stop();
  proc.kill('SIGTERM');
  const exit = await proc.exited;
  assert.equal(exit.code, 0);
  assert.deepEqual(stats.failures, [], `failed requests: ${stats.failures.slice(0, 5).join('; ')}`);
  assert.equal(stats.refused, 0);
  assert.ok(stats.ok > 300, `requests served: ${stats.ok}`);
  const log = proc.output();
  assert.match(log, /ignoring new TLS files until they form a valid pair/);
  assert.match(log, /reloaded TLS certificate/);
  assert.doesNotMatch(log, /\n\s+at /, 'no stack trace');
});

test('server process under steady load: a cert-manager style ..data symlink swap fails no request', async (t) => {
  const dir = tempDir(t);
  const a = await newCerts();
  const b = await newCerts();
  const vol = join(dir, 'tls');
  mkdirSync(vol);
  kubeletVolume(vol, a, 1, true);
  const proc = await startServerProcess(['--tls-cert', join(vol, 'tls.crt'), '--tls-key', join(vol, 'tls.key'), '--drain-seconds', '0']);
  t.after(() => proc.kill('SIGKILL'));
  const load = startLoad({ port: proc.port, ca: [a.caCert, b.caCert], fresh: 4, keepAlive: 4 });
  await waitFor(() => load.stats.ok >= 100, 'requests before the swap');
  kubeletVolume(vol, b, 2, false);
  await waitFor(() => load.stats.serials.includes(serialOf(b.tlsCert)), 'the renewed certificate on a new handshake');
  const firstNew = load.stats.serials.indexOf(serialOf(b.tlsCert));
  const before = load.stats.ok;
  await waitFor(() => load.stats.ok >= before + 100 && load.stats.serials.length > firstNew + 60, 'requests after the swap');
  const stats = await load.stop();
  // Once the new certificate was seen, every later new connection sees it (skipping the 8 workers'
  // handshakes that may have begun before the swap and completed just after).
  assert.ok(stats.serials.slice(firstNew + 8).every((s) => s === serialOf(b.tlsCert)), 'no new handshake gets the old certificate after the swap');
  proc.kill('SIGTERM');
  assert.equal((await proc.exited).code, 0);
  assert.deepEqual(stats.failures, []);
  assert.equal(stats.refused, 0);
});
