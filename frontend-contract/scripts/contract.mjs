// The frontend contract, generated from operations/**/*.graphql and ../schema.graphql:
//
//   node scripts/contract.mjs          write src/gql/ and persisted-documents.json
//   node scripts/contract.mjs --check  write nothing; exit 1 when they are stale, or when
//                                      an operation no longer validates against the schema
//
// Codegen runs in memory (with codegen.ts as its config), so --check compares exactly
// what a regeneration would write.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generate, loadCodegenConfig } from '@graphql-codegen/cli';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outputDir = path.join(root, 'src/gql');
const manifest = path.join(root, 'persisted-documents.json');
const check = process.argv.includes('--check');

async function expectedFiles() {
  const { config } = await loadCodegenConfig({ configFilePath: path.join(root, 'codegen.ts') });
  let generated;
  try {
    generated = await generate({ ...config, cwd: root, silent: true }, false);
  } catch (error) {
    const errors = error?.errors ?? [error]; // an AggregateError, one per failed output
    console.error('codegen failed: the operations do not validate against ../schema.graphql.');
    for (const each of errors) console.error(String(each?.message ?? each));
    process.exit(1);
  }
  const files = new Map(generated.map(({ filename, content }) => [path.resolve(root, filename), content]));
  // The server reads the manifest here (backend/graphql/persisted/trusted.py DEFAULT_MANIFEST).
  files.set(manifest, files.get(path.join(outputDir, 'persisted-documents.json')));
  return files;
}

async function readOrNull(file) {
  return readFile(file, 'utf8').catch(() => null);
}

async function listDir(dir) {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => path.join(e.parentPath ?? e.path, e.name));
}

const files = await expectedFiles();
const relative = (file) => path.relative(root, file);

if (check) {
  const stale = [];
  for (const [file, content] of files) {
    const actual = await readOrNull(file);
    if (actual !== content) stale.push(`${relative(file)} (${actual === null ? 'missing' : 'differs'})`);
  }
  for (const file of await listDir(outputDir)) {
    if (!files.has(file)) stale.push(`${relative(file)} (not generated any more)`);
  }
  if (stale.length) {
    console.error('The frontend contract is stale; regenerate it with `make contract`:');
    for (const line of stale) console.error(`  ${line}`);
    process.exit(1);
  }
  console.log(`The frontend contract is up to date (${files.size} files).`);
} else {
  for (const file of await listDir(outputDir)) {
    if (!files.has(file)) await rm(file);
  }
  for (const [file, content] of files) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  const count = Object.keys(JSON.parse(files.get(manifest))).length;
  console.log(`Wrote ${files.size} files; persisted-documents.json holds ${count} documents.`);
}
