// Parses .bicep files with tree-sitter-bicep (wasm, through web-tree-sitter)
// and exits non-zero, listing every file with ERROR or MISSING nodes.
// Syntax only: no types, no resource API versions (no Bicep compiler runs here).
//
//   node infra/parse-bicep.mjs FILE.bicep [FILE.bicep ...]
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Parser, Language } from 'web-tree-sitter';

const require = createRequire(import.meta.url);
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node infra/parse-bicep.mjs FILE.bicep...');
  process.exit(2);
}

await Parser.init();
const wasm = require.resolve('tree-sitter-bicep/tree-sitter-bicep.wasm');
const bicep = await Language.load(wasm);
const parser = new Parser();
parser.setLanguage(bicep);

let bad = 0;
for (const file of files) {
  const tree = parser.parse(readFileSync(file, 'utf8'));
  const problems = [];
  const walk = (node) => {
    if (node.isError || node.isMissing) {
      const p = node.startPosition;
      const what = node.isMissing ? `MISSING ${node.type}` : 'ERROR';
      problems.push(`${file}:${p.row + 1}:${p.column + 1}: ${what}: ${JSON.stringify(node.text.slice(0, 60))}`);
      if (node.isError) return; // one report per error subtree
    }
    for (const child of node.children) walk(child);
  };
  if (tree.rootNode.hasError) walk(tree.rootNode);
  if (tree.rootNode.hasError && problems.length === 0) problems.push(`${file}: parse error`);
  if (problems.length > 0) {
    bad++;
    for (const p of problems) console.log(p);
  }
  tree.delete();
}
if (bad > 0) {
  console.log(`${bad} of ${files.length} bicep file(s) do not parse`);
  process.exit(1);
}
console.log(`${files.length} bicep file(s) parse`);
