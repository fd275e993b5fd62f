import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  atomicWriteFileSync,
  atomicWriteJsonSync,
  atomicWriteSync,
  writeFullySync,
} from '../../../src/util/atomic.js';
import { tempDir } from './helpers.js';

test('atomic writes replace the file and leave no temporary behind', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'state.json');
    writeFileSync(file, 'old');
    atomicWriteJsonSync(file, { step: 3 });
    assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), { step: 3 });
    atomicWriteFileSync(file, new Uint8Array([1, 2, 3]));
    assert.deepEqual([...readFileSync(file)], [1, 2, 3]);
    assert.deepEqual(readdirSync(dir), ['state.json']);
  } finally {
    cleanup();
  }
});

test('a failing write leaves the old file untouched and removes the temporary', () => {
  const { dir, cleanup } = tempDir();
  try {
    const file = join(dir, 'model.safetensors');
    writeFileSync(file, 'previous checkpoint');
    assert.throws(
      () =>
        atomicWriteSync(file, (fd) => {
          writeFullySync(fd, Buffer.from('half of a new chec'));
          throw new Error('disk full');
        }),
      /disk full/,
    );
    assert.equal(readFileSync(file, 'utf8'), 'previous checkpoint');
    assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  } finally {
    cleanup();
  }
});

test('a missing target directory is an error, not a silent success', () => {
  const { dir, cleanup } = tempDir();
  try {
    assert.throws(() => atomicWriteFileSync(join(dir, 'no', 'such', 'x.json'), '{}'), /ENOENT/);
  } finally {
    cleanup();
  }
});
