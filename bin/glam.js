#!/usr/bin/env node
import { existsSync } from 'node:fs';

const main = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(main)) {
  const root = new URL('..', import.meta.url).pathname;
  console.error(`glam: ${root} is not built yet: run \`npm ci\` there first, then \`npx glam ...\`.`);
  process.exit(1);
}
await import(main.href);
