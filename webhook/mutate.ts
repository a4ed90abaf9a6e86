// The /mutate handler: AdmissionRequest in, Decision out. Thin: the injection core decides, this module
// turns its result into an AdmissionResponse with a JSON patch computed by diffing.
import type { AdmissionRequest, Decision, KubeObject } from './admission.ts';
import { allow, allowWithPatch, decisionFor, deny, objectRef } from './admission.ts';
import type { Config } from './config.ts';
import { csiDriverMissing, denialLines, injectTemplate, warningName } from './inject.ts';
import { createPatch } from './patch.ts';
import { templateWorkload } from './rules.ts';
import type { ValidationService } from './validation.ts';

export interface MutateDeps {
  config: Config;
  validation?: Pick<ValidationService, 'mutateConfigMap' | 'namespaceLabels' | 'csiDriverExists'> & Partial<Pick<ValidationService, 'podWorkload'>>;
}

export function mutate(req: AdmissionRequest, deps: MutateDeps): Decision {
  const kind = req.kind.kind;
  if (kind === 'ConfigMap' && deps.validation) {
    const d = deps.validation.mutateConfigMap(req);
    if (d) return d;
  }
  if (kind !== 'Pod' || req.kind.group !== '' || req.subResource)
    return decisionFor(allow(req.uid), [], { skipped: 'not-pod' });
  if (req.operation !== 'CREATE') return decisionFor(allow(req.uid), [], { skipped: 'not-create' });
  const pod = req.object;
  if (!pod || typeof pod !== 'object') return decisionFor(allow(req.uid), [], { skipped: 'no-object' });

  const namespace = req.namespace || (typeof pod.metadata?.namespace === 'string' ? pod.metadata.namespace : '') || 'default';
  const ref = objectRef('Pod', pod, namespace);
  const result = injectTemplate(pod, deps.config, {
    namespace,
    namespaceLabels: deps.validation?.namespaceLabels(namespace),
    ref,
    // a controller's pod: fixes name its workload's template (with the cluster's cache when there is one), looked up
    // once, and only if a message names it
    owner: once(() => (deps.validation?.podWorkload ? deps.validation.podWorkload(pod as KubeObject, namespace, deps.config) : templateWorkload(pod, deps.config, namespace))),
  });
  switch (result.outcome) {
    case 'skip':
      return decisionFor(allow(req.uid), [], { skipped: result.reason });
    case 'deny': {
      const each = result.all.map((d) => d.rule);
      return { ...decisionFor(deny(req.uid, denialLines(result)), [...new Set(each)]), violations: each };
    }
    case 'inject': {
      const warnings = [...result.warnings];
      if (result.status.volumes.length && deps.config.policies['csi-driver-missing'] !== 'off' && deps.validation?.csiDriverExists(deps.config.spire.csiDriver) === false)
        warnings.push(csiDriverMissing(ref, deps.config.spire.csiDriver));
      const patch = createPatch(pod as KubeObject, result.template);
      // the warnings' names: each counted as `warned`, and logged once (none for a pod with nothing to warn about)
      const each = warnings.length ? warnings.map(warningName).filter((n) => n !== undefined) : [];
      const decision = decisionFor(allowWithPatch(req.uid, patch, warnings, ref), each.length > 1 ? [...new Set(each)] : each, {
        mode: result.mode,
        injected: patch.length ? result.injected : [],
        unchanged: patch.length === 0,
      });
      if (each.length > 1) decision.violations = each;
      return decision;
    }
  }
}

/** `f`, called at most once. */
function once<T>(f: () => T): () => T {
  let done = false;
  let value: T;
  return () => {
    if (!done) {
      value = f();
      done = true;
    }
    return value;
  };
}
