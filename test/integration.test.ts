// Integration: the real `kagenti-webhook serve` process on a random port, with certificates made by the
// project's own `kagenti-webhook certs` command; TLS verified against that CA with the server name the API
// server uses (kagenti-webhook.kagenti-system.svc); every returned patch applied by `kubectl patch --local`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../webhook/admission.ts';
import { BIN, decodePatch, kubectlPatch, podCreateRequest, podOfWorkload, podProblems, postTls, ROOT, runCli } from './helpers.ts';
import { KUBECTL_YAML } from '../webhook/kubectl-yaml.ts';

const GOLDEN = join(ROOT, 'test', 'golden');

function podsFromGolden(): KubeObject[] {
  const pods: KubeObject[] = [];
  for (const f of readdirSync(GOLDEN).filter((n) => n.endsWith('.yaml') && !n.endsWith('.config.yaml')).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(GOLDEN, f), 'utf8'), KUBECTL_YAML) as any[]) {
      const js = doc.toJS();
      if (!js) continue;
      const objs = js.kind === 'List' ? js.items : [js];
      for (const o of objs) {
        const pod = podOfWorkload(o);
        if (pod) pods.push(pod);
      }
    }
  }
  return pods;
}

describe('real server process', () => {
  let proc: ChildProcess;
  let port = 0;
  let ca = '';
  const logs: any[] = [];
  let dir: string | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'kw-int-'));
    const certs = runCli(['certs', '--service', 'kagenti-webhook', '--namespace', 'kagenti-system', '--out', dir]);
    assert.equal(certs.code, 0, certs.stderr);
    ca = readFileSync(join(dir, 'ca.crt'), 'utf8');
    proc = spawn(
      process.execPath,
      [BIN, 'serve', '--tls-cert', join(dir, 'tls.crt'), '--tls-key', join(dir, 'tls.key'), '--port', '0', '--probe-port', '0', '--host', '127.0.0.1', '--cluster', 'none', '--drain-seconds', '0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines = createInterface({ input: proc.stdout! });
    port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('server did not start')), 20_000);
      lines.on('line', (line) => {
        let j: any;
        try {
          j = JSON.parse(line);
        } catch {
          return;
        }
        logs.push(j);
        if (j.msg === 'listening') {
          clearTimeout(timer);
          resolve(j.port);
        }
      });
      proc.on('exit', (code) => reject(new Error(`server exited ${code}`)));
    });
  });

  after(async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('every golden pod: patch applies with kubectl and yields a valid Pod', async () => {
    const pods = podsFromGolden();
    assert.ok(pods.length >= 30);
    let patched = 0;
    for (const pod of pods) {
      const req = podCreateRequest(pod, pod.metadata?.namespace ?? 'default');
      const r = await postTls(port, ca, '/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: req }));
      assert.equal(r.status, 200, r.text);
      const res = JSON.parse(r.text);
      assert.equal(res.apiVersion, 'admission.k8s.io/v1');
      assert.equal(res.kind, 'AdmissionReview');
      assert.equal(res.response.uid, req.uid);
      if (!res.response.allowed) continue;
      const patch = decodePatch(res.response);
      if (!patch.length) continue;
      patched++;
      const out = kubectlPatch(pod, patch);
      assert.deepEqual(podProblems(out), [], `${pod.metadata.name ?? pod.metadata.generateName}`);
      const csi = (out.spec.volumes ?? []).find((v: any) => v.csi);
      if (csi) assert.deepEqual(csi.csi, { driver: 'csi.spiffe.io', readOnly: true });
    }
    assert.ok(patched >= 20, `only ${patched} pods were patched`);
  });

  test('one JSON log line per admission, attributable to the requesting user', async () => {
    const pod = podsFromGolden()[0];
    const req = podCreateRequest(pod, 'team-a');
    (req.userInfo as any).username = 'alice@example.com';
    await postTls(port, ca, '/mutate', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: req }));
    let line: any;
    for (let i = 0; i < 100 && !line; i++) {
      await new Promise((r) => setTimeout(r, 50));
      line = logs.find((l) => l.uid === req.uid);
    }
    assert.ok(line, 'no log line for the admission (logs are flushed asynchronously)');
    assert.equal(line.msg, 'admission');
    assert.equal(line.user, 'alice@example.com');
    assert.equal(line.kind, 'Pod');
    assert.equal(line.namespace, 'team-a');
    assert.ok(line.name || line.generateName);
    assert.ok(['patched', 'allowed', 'denied', 'warned'].includes(line.decision));
    assert.equal(typeof line.durationMs, 'number');
  });

  test('TLS is verified with the service name and refuses TLS 1.1', async () => {
    const tls = await import('node:tls');
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'kagenti-webhook.kagenti-system.svc', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' }, () => resolve(s));
        s.on('error', reject);
      }),
    );
    // A name the certificate does not carry fails verification: the SANs are what the API server checks.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca, servername: 'other.example.com' }, () => resolve(s));
        s.on('error', reject);
      }),
      /altnames|Hostname\/IP does not match/,
    );
  });
});
