// What go-yaml v2's scanner (kubectl's YAML reader) refuses in a document that the yaml package (YAML 1.2) reads:
// tabs where go-yaml looks for a token, anchor and alias names past [A-Za-z0-9_-], and escapes it does not know.
// kubectl refuses the whole file for each of them. Pure: a document's text in, the first problem out.
//
// go-yaml's rules for tabs (scannerc.go), checked against kubectl:
// - between tokens, in block context, a tab is skipped only where no simple key may start: not at the start of a
//   line (a blank or comment-only line too), and not after `-`, `?` or a `:` that follows no key on its line; there
//   it is "found character that cannot start any token". After a key's `:`, a scalar, an alias, an anchor, a tag or
//   a flow collection it is a separator.
// - the blank lines after a plain scalar belong to that scalar's scanner: a tab in their indentation left of the
//   scalar's indentation (its collection's column + 1) is "found a tab character that violates indentation"; at or
//   right of it, blank.
// - in a block scalar, a tab in a line's indentation (left of the block's indentation, or anywhere in it before
//   that indentation is known) is "found a tab character where an indentation space is expected"; after it, content.
// - in flow collections, quoted scalars and comments tabs are allowed.
import { Lexer } from 'yaml';

export interface ScanProblem {
  /** offset in the text */
  offset: number;
  message: string;
}

const CANNOT_START = (where: string) =>
  `not valid for kubectl: a tab ${where}, where kubectl's YAML reader looks for the next token and refuses the whole file ("yaml: found character that cannot start any token"), so it would apply nothing from this file. Fix: replace the tab with spaces, or remove it`;
const VIOLATES =
  `not valid for kubectl: a tab in the indentation of a line after a plain value, left of the value's indentation, which kubectl's YAML reader refuses for the whole file ("yaml: found a tab character that violates indentation"), so it would apply nothing from this file. Fix: replace the tab with spaces, or remove it`;
const BLOCK_INDENT =
  `not valid for kubectl: a tab in the indentation of a block scalar's line (| or >), which kubectl's YAML reader refuses for the whole file ("yaml: found a tab character where an indentation space is expected"), so it would apply nothing from this file. Fix: indent the line with spaces (a tab after the block's indentation is content)`;

/** Characters go-yaml ends an anchor or alias name at; any other character past [A-Za-z0-9_-] is an error. */
const NAME_END = '?:,]}%@`';
/** The escapes of double-quoted scalars go-yaml v2 knows (YAML 1.1's, and `\'`); not YAML 1.2's `\/`. */
const ESCAPES = '0abt\tnvfre "\'\\N_LP';
const HEX_LENGTH: Record<string, number> = { x: 2, u: 4, U: 8 };

function badName(tok: string, offset: number): ScanProblem | undefined {
  const name = tok.slice(1);
  const m = /[^A-Za-z0-9_-]/.exec(name);
  if (!m && name !== '') return undefined;
  // a name go-yaml ends early at a flow indicator, `:` or `?` is read, if otherwise than here
  if (m && m.index > 0 && NAME_END.includes(m[0])) return undefined;
  const what = tok[0] === '&' ? 'anchor' : 'alias';
  return {
    offset: offset + 1 + (m?.index ?? 0),
    message: `not valid for kubectl: the ${what} ${tok} has a name kubectl's YAML reader does not take (only letters A-Z and a-z, digits, _ and -, at least one), and it refuses the whole file ("yaml: did not find expected alphabetic or numeric character"), so it would apply nothing from this file. Fix: rename the anchor and its aliases with those characters only`,
  };
}

function badEscape(tok: string, offset: number): ScanProblem | undefined {
  for (let j = tok.indexOf('\\'); j !== -1 && j < tok.length - 1; j = tok.indexOf('\\', j)) {
    const e = tok[j + 1]!;
    if (e === '\n' || e === '\r' || ESCAPES.includes(e)) {
      j += 2;
      continue;
    }
    const len = HEX_LENGTH[e];
    if (len === undefined)
      return {
        offset: offset + j,
        message: `not valid for kubectl: the escape \\${e} in a double-quoted string, which kubectl's YAML reader (YAML 1.1) does not know and refuses the whole file for ("yaml: found unknown escape character"), so it would apply nothing from this file. Fix: ${e === '/' ? 'write / without the backslash' : `remove the backslash, or write \\\\ for a backslash`}`,
      };
    const hex = tok.slice(j + 2, j + 2 + len);
    const code = /^[0-9a-fA-F]+$/.test(hex) && hex.length === len ? parseInt(hex, 16) : NaN;
    if (Number.isNaN(code) || (code >= 0xd800 && code <= 0xdfff) || code > 0x10ffff)
      return {
        offset: offset + j,
        message: `not valid for kubectl: the escape \\${e}${hex} in a double-quoted string is not a Unicode character (a surrogate half, or past U+10FFFF), which kubectl's YAML reader refuses the whole file for ("yaml: found invalid Unicode character escape code"), so it would apply nothing from this file. Fix: write the character itself, or its code point as one \\UXXXXXXXX escape`,
      };
    j += 2 + len;
  }
  return undefined;
}

/**
 * The first thing in a YAML document's text that go-yaml v2 refuses and the yaml package reads (see above), or
 * undefined. The text must be one the yaml package parsed without errors (its lexer's tokens are then the document's).
 * A document without tabs, `&`, `*` or `\` is not lexed.
 */
export function goYamlScanProblem(text: string): ScanProblem | undefined {
  if (!/[\t&*\\]/.test(text)) return undefined;
  const tabs = text.includes('\t');
  let at = 0; // offset of the token
  let lineStart = 0;
  let lineHasContent = false;
  let flow = 0;
  let simpleKeyAllowed = true;
  /** go-yaml's parser.indent: the column of the innermost block collection's entries (-1: none) */
  let entryCol = -1;
  /** the column of the first token of the entry on this line since line start, `-`, `?` or `:` (-1: none) */
  let keyCol = -1;
  /** after a plain scalar in block context: the blank lines that follow are its scanner's, with this indentation */
  let plainIndent = -1;
  let blockHeader: string | undefined;
  let scalarNext = false;
  const col = (offset: number) => offset - lineStart;
  const newlines = (tok: string) => {
    const nl = tok.lastIndexOf('\n');
    if (nl !== -1) {
      lineStart = at + nl + 1;
      lineHasContent = nl + 1 < tok.length;
    }
  };
  for (const tok of new Lexer().lex(text)) {
    if (tok === '\x02' || tok === '\x18') continue; // the lexer's marks are not text
    if (tok === '\x1f') {
      scalarNext = true;
      continue;
    }
    const c = tok[0];
    if (scalarNext) {
      scalarNext = false;
      if (blockHeader !== undefined) {
        const p = tabs ? blockScalarTab(tok, blockHeader, entryCol) : -1;
        if (p >= 0) return { offset: at + p, message: BLOCK_INDENT };
        blockHeader = undefined;
        simpleKeyAllowed = true;
        newlines(tok);
        at += tok.length;
        continue;
      }
      {
        if (keyCol < 0) keyCol = col(at);
        if (flow === 0) {
          plainIndent = Math.max(entryCol + 1, 0);
          // continuation lines of the scalar: a tab in their indentation left of the scalar's indentation
          if (tabs && tok.includes('\n')) {
            const re = /\n([ \t]*)/g;
            for (let m = re.exec(tok); m; m = re.exec(tok)) {
              const t = m[1]!.indexOf('\t');
              if (t !== -1 && t < plainIndent) return { offset: at + m.index + 1 + t, message: VIOLATES };
            }
          }
        }
        simpleKeyAllowed = tok.endsWith('\n');
      }
      newlines(tok);
      lineHasContent = true;
      at += tok.length;
      continue;
    }
    if (tok === '\n' || tok === '\r\n' || tok === '\r') {
      lineStart = at + tok.length;
      lineHasContent = false;
      keyCol = -1;
      if (flow === 0) simpleKeyAllowed = true;
    } else if (/^[ \t]+$/.test(tok)) {
      const t = tok.indexOf('\t');
      if (t !== -1 && flow === 0) {
        if (!lineHasContent && plainIndent >= 0) {
          if (col(at + t) < plainIndent) return { offset: at + t, message: VIOLATES };
        } else if (!lineHasContent) return { offset: at + t, message: CANNOT_START('at the start of a line (a blank or comment line too)') };
        else if (simpleKeyAllowed) return { offset: at + t, message: CANNOT_START('after a -, ? or a : that follows no key') };
      }
    } else {
      lineHasContent = true;
      plainIndent = -1;
      if (c === '#') {
        // a comment: to the end of its line
      } else if (c === '"' || c === "'") {
        if (c === '"' && tok.includes('\\')) {
          const bad = badEscape(tok, at);
          if (bad) return bad;
        }
        if (keyCol < 0) keyCol = col(at);
        simpleKeyAllowed = false;
        newlines(tok);
        lineHasContent = true;
      } else if (c === '&' || c === '*') {
        const bad = badName(tok, at);
        if (bad) return bad;
        if (keyCol < 0) keyCol = col(at);
        simpleKeyAllowed = false;
      } else if (c === '!') {
        if (keyCol < 0) keyCol = col(at);
        simpleKeyAllowed = false;
      } else if (tok === '-' || tok === '?') {
        if (flow === 0) {
          entryCol = col(at);
          simpleKeyAllowed = true;
        }
        keyCol = -1;
      } else if (tok === ':') {
        if (flow === 0) {
          // a key's `:` (a simple key on this line) takes no simple key after it; a complex key's does
          if (keyCol >= 0) entryCol = keyCol;
          simpleKeyAllowed = keyCol < 0;
        }
        keyCol = -1;
      } else if (c === '{' || c === '[') {
        if (keyCol < 0) keyCol = col(at);
        flow++;
      } else if (c === '}' || c === ']') {
        flow = Math.max(flow - 1, 0);
        simpleKeyAllowed = false;
      } else if (tok === '---' || tok === '...') {
        flow = 0;
        entryCol = -1;
        keyCol = -1;
        simpleKeyAllowed = false;
      } else if ((c === '|' || c === '>') && flow === 0) {
        blockHeader = tok;
        simpleKeyAllowed = false; // its header's line is the block scalar's, tabs and comment included
      } else if (c !== ',' && c !== '%') simpleKeyAllowed = false;
    }
    at += tok.length;
  }
  return undefined;
}

/**
 * The offset in a block scalar's body (its lines, from the one after the header) of the first tab in a line's
 * indentation, as go-yaml finds it: left of the block's indentation, or anywhere while that is not yet known (the
 * leading blank lines). -1 when there is none. `parent`: the column of the block's collection (-1: none).
 */
function blockScalarTab(body: string, header: string, parent: number): number {
  if (!body.includes('\t')) return -1;
  const digit = /[1-9]/.exec(header);
  let indent = digit ? Math.max(parent, 0) + Number(digit[0]) : 0;
  let maxIndent = 0;
  let p = 0;
  while (p < body.length) {
    const nl = body.indexOf('\n', p);
    const end = nl === -1 ? body.length : nl;
    let q = p;
    while (q < end && body.charCodeAt(q) === 32 && (indent === 0 || q - p < indent)) q++;
    if (body.charCodeAt(q) === 9 && (indent === 0 || q - p < indent)) return q;
    if (indent === 0) {
      maxIndent = Math.max(maxIndent, q - p);
      // the first line with content sets the indentation: the deepest of the lines before, its own, at least one
      // more than the collection's
      if (q < end && !(q + 1 === end && body.charCodeAt(q) === 13)) indent = Math.max(maxIndent, parent + 1, 1);
    }
    p = end + 1;
  }
  return -1;
}
