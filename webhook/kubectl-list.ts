// Lists as kubectl reads them (apimachinery's unstructured decoding and its builder's flattening of lists).
import { isObject } from './json.ts';

/**
 * Why kubectl refuses an item of a List, or undefined. kubectl takes any item with an `items` key (not null) for a
 * list of its own, whatever its kind, and reads no list inside a list: an array there is "*unstructured.Unstructured
 * is not a list: no Items field in this object", anything else a decoding error. The whole file is refused.
 */
export function listItemProblem(listKind: string, index: number, item: unknown): string | undefined {
  if (!isObject(item) || item.items === undefined || item.items === null) return undefined;
  const what = typeof item.kind === 'string' && item.kind ? `(${item.kind}) ` : '';
  if (Array.isArray(item.items))
    return `not valid for kubectl: items[${index}] of ${listKind} ${what}is a list itself (it has items), and kubectl reads no list inside a list: it refuses the file ("*unstructured.Unstructured is not a list: no Items field in this object"), so it would apply nothing from it. Fix: move its items into the outer list's items, or make it a document of its own`;
  return `not valid for kubectl: items[${index}] of ${listKind} ${what}has an items field that is not a list, and kubectl reads any item with items as a list: it refuses the file ("json: cannot unmarshal ... into Go struct field decodeList.items"), so it would apply nothing from it. Fix: remove the field, or make it a list of objects in a document of its own`;
}
