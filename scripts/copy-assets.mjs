// Copies the non-TypeScript files that modules load at run time (weights,
// their JSON records) from src/ to dist/, keeping their paths: tsc copies
// only what it compiles.
import { cpSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, extname, join, relative } from 'node:path';

const ASSETS = new Set(['.safetensors', '.json']);
let copied = 0;
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (ASSETS.has(extname(name))) {
      const target = join('dist', relative('src', path));
      mkdirSync(dirname(target), { recursive: true });
      cpSync(path, target);
      copied++;
    }
  }
}
walk('src');
console.log(`copied ${copied} asset file(s) to dist/`);
