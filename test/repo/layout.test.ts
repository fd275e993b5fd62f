/**
 * The README's architecture table is the map of the tree: it names every folder (and no folder that is
 * gone), and the order of its native/ and src/ rows is the layering: a file includes or imports only
 * from its own folder or from folders above it in the table.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** Files git tracks (not a scratch file beside them), relative, with '/' separators. */
const files = execFileSync('git', ['ls-files', '--cached'], {
  cwd: root,
  encoding: 'utf8',
})
  .split('\n')
  .filter((f) => f !== '')
  .filter((f) => existsSync(path.join(root, f))); // not one deleted in the working tree only

interface Row {
  folders: string[];
  text: string;
}

/** The rows of the table under '## Architecture': the folders of the first cell, the whole line. */
function architectureRows(readme: string): Row[] {
  const start = readme.indexOf('\n## Architecture\n');
  assert.ok(start >= 0, "README.md has no '## Architecture' section");
  const rest = readme.slice(start + 1);
  const end = rest.search(/\n##+ /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return section
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => ({
      folders: [...(line.split('|')[1] ?? '').matchAll(/`([^`]+\/)`/g)].map((m) => m[1]!),
      text: line,
    }));
}

const rows = architectureRows(readFileSync(path.join(root, 'README.md'), 'utf8'));
const listed = rows.flatMap((r) => r.folders);

/** The folder a file belongs to in the table: `src/X/` and `native/X/`, else its top-level folder. */
function tableFolder(file: string): string | undefined {
  const parts = file.split('/');
  if (parts.length < 2) return undefined;
  if (parts[0] === 'src' || parts[0] === 'native')
    return parts.length < 3 ? undefined : `${parts[0]}/${parts[1]}/`;
  return `${parts[0]}/`;
}

/** Rank of each native/ and src/ folder: its position among the table's rows of its tree. */
function ranks(tree: 'src' | 'native'): Map<string, number> {
  const order = listed.filter((f) => f.startsWith(`${tree}/`));
  return new Map(order.map((f, i) => [f, i]));
}

describe("README's architecture table", () => {
  it('names every folder of the tree, and only folders that exist', () => {
    const present = new Set(files.map(tableFolder).filter((f): f is string => f !== undefined));
    const missing = [...present].filter((f) => !listed.includes(f)).sort();
    assert.deepEqual(
      missing,
      [],
      `folders missing from README.md's architecture table: ${missing.join(', ')}`,
    );
    const gone = listed.filter((f) => !present.has(f));
    assert.deepEqual(gone, [], `the architecture table names folders that do not exist: ${gone.join(', ')}`);
    assert.equal(new Set(listed).size, listed.length, 'a folder is named twice in the table');
  });

  it("names each src/ and native/ folder's subfolders in its row", () => {
    const unnamed: string[] = [];
    for (const f of files) {
      const parts = f.split('/');
      if ((parts[0] !== 'src' && parts[0] !== 'native') || parts.length < 4) continue;
      const row = rows.find((r) => r.folders.includes(`${parts[0]}/${parts[1]}/`));
      const sub = `\`${parts[2]}/\``;
      if (row !== undefined && !row.text.includes(sub)) unnamed.push(`${parts[0]}/${parts[1]}/${parts[2]}/`);
    }
    const u = [...new Set(unnamed)].sort();
    assert.deepEqual(u, [], `subfolders not named in their folder's row: ${u.join(', ')}`);
  });

  it('src/: every relative import goes to the same folder or one above it in the table', () => {
    const rank = ranks('src');
    const upward: string[] = [];
    for (const f of files.filter((x) => x.startsWith('src/') && x.endsWith('.ts'))) {
      const from = tableFolder(f);
      if (from === undefined) continue; // the library entry point src/index.ts exports every layer
      const source = readFileSync(path.join(root, f), 'utf8');
      for (const m of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|^import\s+)'(\.[^']*)'/gm)) {
        const target = path.posix.normalize(path.posix.join(path.posix.dirname(f), m[1]!));
        const to = tableFolder(target);
        if (to === undefined || !to.startsWith('src/')) {
          upward.push(`${f} imports '${m[1]}', outside src/'s folders`);
        } else if (rank.get(to)! > rank.get(from)!) {
          upward.push(`${f} (${from}) imports '${m[1]}' (${to}, below it in the table)`);
        }
      }
    }
    assert.deepEqual(upward, []);
  });

  it('native/: includes go to the same folder or one above it; only native/node and native/mpi use Node', () => {
    const rank = ranks('native');
    const bad: string[] = [];
    for (const f of files.filter((x) => x.startsWith('native/') && /\.(cc|h)$/.test(x))) {
      const from = tableFolder(f);
      if (from === undefined) continue;
      const source = readFileSync(path.join(root, f), 'utf8');
      for (const m of source.matchAll(/^#include\s+"([^"]+)"/gm)) {
        const to = tableFolder(path.posix.normalize(path.posix.join(path.posix.dirname(f), m[1]!)));
        if (to?.startsWith('native/') && rank.get(to)! > rank.get(from)!) {
          bad.push(`${f} includes "${m[1]}" (${to}, below it in the table)`);
        }
      }
      if (from === 'native/core/' && /^#include\s+[<"](node_api|napi|node)\.h[>"]/m.test(source)) {
        bad.push(`${f}: the core includes a Node header`);
      }
    }
    assert.deepEqual(bad, []);
  });
});
