// JSON Patch (RFC 6902) between the object we received and our mutated copy, via fast-json-patch's compare,
// so every field we do not model survives untouched.
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { isObject, jsonEqual, jsonText } from './json.ts';
import { podTemplatePath, WORKLOAD_KINDS } from './workloads.ts';

const { compare } = fastJsonPatch;

function escapeSegment(s: string): string {
  return s.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Where pod specs live in the objects we patch, and the lists in them that injection inserts into. */
const SPEC_PATHS: string[][] = [...new Set(WORKLOAD_KINDS.map((k) => [...podTemplatePath(k)!, 'spec'].join('/')))].map((p) => p.split('/'));
const LIST_KEYS = ['containers', 'initContainers', 'volumes'];

/**
 * Ops for one list: the common prefix and suffix stay, the items between are removed and inserted by index.
 * Injection prepends sidecars and appends volumes, so this sends only the injected items, not the pod's own
 * containers again (a pod with 1,500 env vars would otherwise be echoed back whole). When that would take
 * more items than the list has, the list is replaced whole.
 */
function listOps(pointer: string, before: unknown[], after: unknown[]): Operation[] {
  let p = 0;
  while (p < before.length && p < after.length && jsonEqual(before[p], after[p])) p++;
  let s = 0;
  while (s < before.length - p && s < after.length - p && jsonEqual(before[before.length - 1 - s], after[after.length - 1 - s])) s++;
  const removed = before.length - p - s;
  const added = after.length - p - s;
  if (removed === 0 && added === 0) return [];
  if (removed + added > after.length) return [{ op: 'replace', path: pointer, value: after }];
  const ops: Operation[] = [];
  for (let i = p + removed - 1; i >= p; i--) ops.push({ op: 'remove', path: `${pointer}/${i}` });
  for (let j = 0; j < added; j++) ops.push({ op: 'add', path: `${pointer}/${p + j}`, value: after[p + j] });
  return ops;
}

/** A copy of `obj` sharing everything but the objects along `path`, so a key at the end can be changed. */
function copyAlong(obj: Record<string, unknown>, path: string[]): Record<string, unknown> {
  const root = { ...obj };
  let cur = root;
  for (const seg of path) {
    const next = { ...(cur[seg] as Record<string, unknown>) };
    cur[seg] = next;
    cur = next;
  }
  return root;
}

function objectAt(obj: unknown, path: string[]): Record<string, unknown> | undefined {
  let cur = obj;
  for (const seg of path) {
    if (!isObject(cur)) return undefined;
    cur = cur[seg];
  }
  return isObject(cur) ? cur : undefined;
}

/**
 * The patch that turns `original` into `mutated`: fast-json-patch's compare for every field, except the
 * container, init-container and volume lists of pod specs present as lists on both sides, which are diffed
 * as insertions and removals (listOps). Values come from the mutated raw copy, so fields we do not model survive.
 */
export function createPatch(original: object, mutated: object): Operation[] {
  if (!isObject(original) || !isObject(mutated)) return compare(original, mutated);
  let o: Record<string, unknown> = original;
  let m: Record<string, unknown> = mutated;
  const listPatches: Operation[] = [];
  for (const path of SPEC_PATHS) {
    const so = objectAt(o, path);
    const sm = objectAt(m, path);
    if (!so || !sm) continue;
    // lists on both sides, or a list only the mutated side has (added whole, without compare's deep copy)
    const keys = LIST_KEYS.filter((k) => Array.isArray(sm[k]) && (Array.isArray(so[k]) || !Object.hasOwn(so, k)));
    if (!keys.length) continue;
    o = copyAlong(o, path);
    m = copyAlong(m, path);
    const co = objectAt(o, path)!;
    const cm = objectAt(m, path)!;
    for (const k of keys) {
      const pointer = `/${path.join('/')}/${k}`;
      if (!Object.hasOwn(co, k)) {
        listPatches.push({ op: 'add', path: pointer, value: cm[k] });
        delete cm[k];
        continue;
      }
      listPatches.push(...listOps(pointer, co[k] as unknown[], cm[k] as unknown[]));
      // the same placeholder on both sides: compare() sees no difference there
      co[k] = null;
      cm[k] = null;
    }
  }
  const ops = compare(o, m);
  return listPatches.length ? [...ops, ...listPatches] : ops;
}

/**
 * JSON.stringify(ops), byte for byte, without serializing again the values whose text is kept (sealJson): the
 * injected containers and volumes are most of every patch.
 */
export function patchJson(ops: readonly Operation[]): string {
  let s = '[';
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Operation & { value?: unknown };
    if (i) s += ',';
    // compare() and listOps() build {op, path[, value]}; anything else is serialized as it is
    const keys = Object.keys(op);
    const plain =
      keys[0] === 'op' &&
      keys[1] === 'path' &&
      (op.op === 'remove' ? keys.length === 2 : (op.op === 'add' || op.op === 'replace') && keys.length === 3 && keys[2] === 'value');
    if (plain && typeof op.path === 'string') {
      s += `{"op":"${op.op}","path":${JSON.stringify(op.path)}`;
      const value = op.op === 'remove' ? undefined : jsonText(op.value);
      s += value === undefined ? '}' : `,"value":${value}}`;
    } else s += JSON.stringify(op);
  }
  return `${s}]`;
}

export { escapeSegment };
