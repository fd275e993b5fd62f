/**
 * Under mpirun, every rank takes the same decisions (decisions-worker.ts): a NaN gradient on one rank
 * skips the step on all of them, a flag raised on one is seen by all, and replicated weights that drift
 * apart on one rank stop every rank with the step named.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { mpirunNode, mpiSkipReason, REPO, rankLines } from './helpers.js';

const WORKER = path.join(REPO, 'dist/test/dist/decisions-worker.js');

interface Decisions {
  rank: number;
  first: { finite: boolean; loss: number };
  spoiled: { finite: boolean; weightsUnchanged: boolean; optimizerSteps: number };
  anyRank: boolean[];
  replicasEqual: string | null;
  replicasDrifted: string | null;
}

describe('decisions agreed by all ranks (under mpirun)', () => {
  const skip = mpiSkipReason();
  for (const mode of ['data', 'expert']) {
    it(`${mode} parallel: NaN on one rank skips the step everywhere; flags and replica checks agree`, {
      skip: skip ?? false,
      timeout: 90_000,
    }, async () => {
      const r = await mpirunNode(2, WORKER, [mode]);
      const lines = rankLines<Decisions>(r.stdout);
      assert.equal(lines.length, 2, r.stdout);
      // The loss is the global batch's: the same number on both ranks.
      assert.equal(lines[0]!.first.loss, lines[1]!.first.loss);
      for (const d of lines) {
        assert.equal(d.first.finite, true);
        assert.deepEqual(
          d.spoiled,
          { finite: false, weightsUnchanged: true, optimizerSteps: 1 },
          `rank ${d.rank}`,
        );
        assert.deepEqual(d.anyRank, [true, false]);
        assert.equal(d.replicasEqual, null);
        assert.match(d.replicasDrifted ?? '', /^step 3: the replicated weights differ between ranks/);
      }
    });
  }
});
