// JSON Patch (RFC 6902) between the object we received and our mutated copy: a diff of the two objects, so
// every field we do not model survives untouched. The same rules as fast-json-patch's compare(), plus a
// shortcut and a list rule:
// - a subtree the mutated copy shares with the original (the same object) is skipped without a look inside:
//   injection copies only what it writes, so the diff walks a handful of objects, not the whole pod;
// - the container, init-container and volume lists of pod specs are diffed as insertions and removals, never
//   sending again an item the mutated copy shares with the original.
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
 * Ops for one list, as removals (from the highest index down) and then insertions (in increasing final index).
 * Items the mutated list shares with the original (the same object) are never sent again: injection shares the
 * pod's own containers and volumes, and a value written back from JSON.parse's numbers would not always be the
 * user's (an integer past 2^53 comes back rounded). Injection prepends sidecars and appends volumes, so an
 * ordinary pod's patch holds only the injected items (a pod with 1,500 env vars would otherwise be echoed whole).
 *
 * The shared items are found by identity: the common prefix and suffix first (all a first injection needs), then a
 * Map from the remaining original items to their indexes (O(n), whatever the list's length). When they keep their
 * relative order (injection never reorders the pod's items), they stay, and between two of them the items both
 * lists hold equal (jsonEqual: a piece of ours rendered afresh) stay too; the rest is removed and inserted. When
 * they do not keep their order (never from injection), the rule is the common prefix and suffix by value, and a
 * list replaced whole when that takes more items than it has; so is a list that shares nothing with the original.
 */
function listOps(pointer: string, before: unknown[], after: unknown[], out: Operation[]): void {
  const bl = before.length;
  const al = after.length;
  let p = 0;
  while (p < bl && p < al && before[p] === after[p]) p++;
  let s = 0;
  while (s < bl - p && s < al - p && before[bl - 1 - s] === after[al - 1 - s]) s++;
  if (p === bl && p === al) return;
  // the shared items between prefix and suffix, as pairs of indexes (original, mutated), both increasing
  let pairs: number[] | undefined;
  if (p + s < bl && p + s < al) {
    const index = new Map<unknown, number>();
    for (let i = p; i < bl - s; i++) {
      const v = before[i];
      if (typeof v !== 'object' || v === null) continue;
      if (index.has(v)) return valueListOps(pointer, before, after, out); // one object twice: not a list we made
      index.set(v, i);
    }
    let last = p - 1;
    for (let j = p; j < al - s; j++) {
      const i = index.get(after[j]);
      if (i === undefined) continue;
      if (i <= last) return valueListOps(pointer, before, after, out);
      (pairs ??= []).push(i, j);
      last = i;
    }
  }
  if (p === 0 && s === 0 && !pairs) return valueListOps(pointer, before, after, out);
  // the gaps between shared items: [from, to) in the original and in the mutated list, equal ends trimmed off
  const gaps: number[] = [];
  const gap = (b0: number, b1: number, a0: number, a1: number) => {
    while (b0 < b1 && a0 < a1 && jsonEqual(before[b0], after[a0])) b0++, a0++;
    while (b0 < b1 && a0 < a1 && jsonEqual(before[b1 - 1], after[a1 - 1])) b1--, a1--;
    if (b0 < b1 || a0 < a1) gaps.push(b0, b1, a0, a1);
  };
  let b = p;
  let a = p;
  if (pairs)
    for (let k = 0; k < pairs.length; k += 2) {
      gap(b, pairs[k]!, a, pairs[k + 1]!);
      b = pairs[k]! + 1;
      a = pairs[k + 1]! + 1;
    }
  gap(b, bl - s, a, al - s);
  for (let g = gaps.length - 4; g >= 0; g -= 4) for (let i = gaps[g + 1]! - 1; i >= gaps[g]!; i--) out.push({ op: 'remove', path: `${pointer}/${i}` });
  for (let g = 0; g < gaps.length; g += 4) for (let j = gaps[g + 2]!; j < gaps[g + 3]!; j++) out.push({ op: 'add', path: `${pointer}/${j}`, value: after[j] });
}

/** listOps by value: the common prefix and suffix stay, the items between are removed and inserted by index, or the list is replaced whole when that takes more items than it has. */
function valueListOps(pointer: string, before: unknown[], after: unknown[], out: Operation[]): void {
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
