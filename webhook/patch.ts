// JSON Patch (RFC 6902) between the object we received and our mutated copy: a diff of the two objects, so
// every field we do not model survives untouched. The same rules as fast-json-patch's compare(), plus a
// shortcut and a list rule:
// - a subtree the mutated copy shares with the original (the same object) is skipped without a look inside:
//   injection copies only what it writes, so the diff walks a handful of objects, not the whole pod;
// - the container, init-container and volume lists of pod specs are diffed as insertions and removals.
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { isObject, jsonEqual, jsonText } from './json.ts';
import { podTemplatePath, WORKLOAD_KINDS } from './workloads.ts';

const { compare } = fastJsonPatch;

/** A JSON Pointer segment (RFC 6901): `~` becomes `~0`, `/` becomes `~1`. */
function escapeSegment(s: string): string {
  if (s.indexOf('/') === -1 && s.indexOf('~') === -1) return s;
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Where pod specs live in the objects we patch, and the lists in them that injection inserts into. */
const SPEC_PATHS: string[][] = [...new Set(WORKLOAD_KINDS.map((k) => [...podTemplatePath(k)!, 'spec'].join('/')))].map((p) => p.split('/'));
const LIST_KEYS = new Set(['containers', 'initContainers', 'volumes']);

/**
 * Ops for one list: the common prefix and suffix stay, the items between are removed and inserted by index.
 * Injection prepends sidecars and appends volumes, so this sends only the injected items, not the pod's own
 * containers again (a pod with 1,500 env vars would otherwise be echoed back whole). When that would take
 * more items than the list has, the list is replaced whole.
 */
function listOps(pointer: string, before: unknown[], after: unknown[], out: Operation[]): void {
  let p = 0;
  while (p < before.length && p < after.length && jsonEqual(before[p], after[p])) p++;
  let s = 0;
  while (s < before.length - p && s < after.length - p && jsonEqual(before[before.length - 1 - s], after[after.length - 1 - s])) s++;
  const removed = before.length - p - s;
  const added = after.length - p - s;
  if (removed === 0 && added === 0) return;
  if (removed + added > after.length) {
    out.push({ op: 'replace', path: pointer, value: after });
    return;
  }
  for (let i = p + removed - 1; i >= p; i--) out.push({ op: 'remove', path: `${pointer}/${i}` });
  for (let j = 0; j < added; j++) out.push({ op: 'add', path: `${pointer}/${p + j}`, value: after[p + j] });
}

/** The spec paths that continue below `key`; an empty path in the result means the child is a pod spec. */
function specPathsBelow(paths: readonly string[][], depth: number, key: string): string[][] | null {
  let below: string[][] | null = null;
  for (const p of paths) if (p[depth] === key) (below ??= []).push(p);
  return below;
}

/**
 * The diff of two objects (or two arrays) at `path`, as fast-json-patch's _generate does it: keys of `a` from
 * the last to the first (removals and replacements; an array shrinks from its end), then the keys only `b`
 * has, in order. `specs` are the pod-spec paths still possible below here; `depth` is how far along they are.
 */
function diffInto(a: Record<string, any>, b: Record<string, any>, path: string, out: Operation[], specs: string[][] | null, depth: number): void {
  const isSpec = specs !== null && specs.some((p) => p.length === depth);
  const array = Array.isArray(b);
  const oldKeys = Object.keys(a);
  let deleted = false;
  for (let t = oldKeys.length - 1; t >= 0; t--) {
    const key = oldKeys[t]!;
    const oldVal = a[key];
    const newVal = b[key];
    if (Object.hasOwn(b, key) && !(newVal === undefined && oldVal !== undefined && !array)) {
      if (oldVal === newVal) continue;
      const sub = `${path}/${escapeSegment(key)}`;
      if (isSpec && LIST_KEYS.has(key) && Array.isArray(oldVal) && Array.isArray(newVal)) listOps(sub, oldVal, newVal, out);
      else if (typeof oldVal === 'object' && oldVal !== null && typeof newVal === 'object' && newVal !== null && Array.isArray(oldVal) === Array.isArray(newVal))
        diffInto(oldVal, newVal, sub, out, specs && specPathsBelow(specs, depth, key), depth + 1);
      else out.push({ op: 'replace', path: sub, value: newVal === undefined ? null : newVal });
    } else if (Array.isArray(a) === array) {
      out.push({ op: 'remove', path: `${path}/${escapeSegment(key)}` });
      deleted = true;
    } else {
      out.push({ op: 'replace', path, value: b });
    }
  }
  const newKeys = Object.keys(b);
  if (!deleted && newKeys.length === oldKeys.length) return;
  for (const key of newKeys) if (!Object.hasOwn(a, key) && b[key] !== undefined) out.push({ op: 'add', path: `${path}/${escapeSegment(key)}`, value: b[key] });
}

/**
 * The patch that turns `original` into `mutated`. Values in the patch are the mutated object's own values
 * (not copies): the patch is meant to be serialized, or applied to a copy of the original.
 */
export function createPatch(original: object, mutated: object): Operation[] {
  if (!isObject(original) || !isObject(mutated)) return compare(original, mutated);
  const out: Operation[] = [];
  diffInto(original, mutated, '', out, SPEC_PATHS, 0);
  return out;
}

/**
 * The JSON text of a patch, reusing the text of the values sealJson keeps (the injected containers and
 * volumes are most of every patch). Ops are written as {op, path, value} (add, replace, test) or {op, path}
 * (remove), the key order createPatch builds them in; other ops as JSON.stringify writes them.
 */
export function patchJson(ops: readonly Operation[]): string {
  let s = '[';
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Operation & { value?: unknown };
    if (i) s += ',';
    const kind = op.op;
    if (typeof op.path !== 'string') s += JSON.stringify(op);
    else if (kind === 'remove') s += `{"op":"remove","path":${JSON.stringify(op.path)}}`;
    else if (kind === 'add' || kind === 'replace' || kind === 'test') {
      const value = jsonText(op.value);
      s += `{"op":"${kind}","path":${JSON.stringify(op.path)}${value === undefined ? '' : `,"value":${value}`}}`;
    } else s += JSON.stringify(op);
  }
  return `${s}]`;
}

export { escapeSegment };
