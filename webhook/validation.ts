// Validation service: the object the server asks about policy and cluster state.
// STUB by the lead: the validation engineer replaces the internals (rules, informers, issuer detection)
// but keeps this exported interface, which serve.ts and the /mutate handler rely on.
import type { Logger } from 'pino';
import type { AdmissionRequest, Decision } from './admission.ts';
import { allow, decisionFor } from './admission.ts';
import type { Config } from './config.ts';

export interface ValidationService {
  /** Answer a `/validate` AdmissionReview request (never throws; denials are Decisions). */
  validate(req: AdmissionRequest): Decision;
  /**
   * Called by `/mutate` for ConfigMaps (tokenReview.action: mutate remediation). Returns null when
   * it has nothing to do with this request; otherwise the decision (possibly with a patch).
   */
  mutateConfigMap(req: AdmissionRequest): Decision | null;
  /** Labels of a namespace from the cache, or undefined when unknown (no cluster state / not cached). */
  namespaceLabels(namespace: string): Record<string, string> | undefined;
  /** Whether a CSIDriver of that name exists; undefined when unknown (no cluster state). */
  csiDriverExists(name: string): boolean | undefined;
  /** For /readyz: ready is false until the first sync. detail goes into the JSON body. */
  readiness(): { ready: boolean; detail: Record<string, unknown> };
  close(): Promise<void> | void;
}

export interface ValidationOptions {
  config: Config;
  log: Logger;
  /** `auto`: kubeconfig / in-cluster when available, else none. `none`: no cluster state. */
  cluster: 'auto' | 'none';
}

export async function startValidation(opts: ValidationOptions): Promise<ValidationService> {
  void opts;
  return {
    validate: (req) => decisionFor(allow(req.uid)),
    mutateConfigMap: () => null,
    namespaceLabels: () => undefined,
    csiDriverExists: () => undefined,
    readiness: () => ({ ready: true, detail: { cluster: 'none' } }),
    close: () => {},
  };
}
