/**
 * The real evaluation files in ../shared/evalsets (beside the repository; CI has
 * them): every file loads in the format its README names, with its full number of
 * examples, and a few examples of each score end to end through a model. Skipped,
 * saying so, where the folder is absent.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadTaskData } from '../../src/eval/data.js';
import { evaluateTask } from '../../src/eval/evaluate.js';
import { ModelScorer } from '../../src/eval/model-scorer.js';
import { getTask } from '../../src/eval/tasks.js';
import { GlamModel } from '../../src/model/glam.js';
import { initParams } from '../../src/model/init.js';
import { byteCodec, byteModelConfig, sharedEvalsets } from './helpers.js';

const root = sharedEvalsets();
const skip = root === undefined ? '../shared/evalsets is not beside the repository' : false;

/** [task, file, format, examples] for every file of the folder. */
const FILES: Array<[string, string, string, number]> = [
  ['arc_e', 'arc_e/llmfoundry_arc_easy.jsonl', 'generic-mc', 2376],
  ['boolq', 'boolq/superglue_BoolQ_val.jsonl', 'superglue-boolq', 3270],
  ['boolq', 'boolq/llmfoundry_boolq.jsonl', 'generic-mc', 3270],
  ['copa', 'copa/superglue_COPA_val.jsonl', 'superglue-copa', 100],
  ['copa', 'copa/llmfoundry_copa.jsonl', 'generic-mc', 100],
  ['hellaswag', 'hellaswag/hellaswag_val_full.txt.bz2', 'hellaswag-text', 10042],
  ['lambada', 'lambada/llmfoundry_lambada_openai.jsonl', 'generic-lm', 5153],
  ['nq', 'naturalquestions/NQ-open.dev.jsonl', 'nq-open', 3610],
  ['piqa', 'piqa/llmfoundry_piqa.jsonl', 'generic-mc', 1838],
  ['storycloze', 'storycloze/cloze_test_val__spring2016.csv', 'storycloze-csv', 1871],
  ['triviaqa', 'triviaqa/llmfoundry_triviaqa_sm_sub.jsonl', 'generic-qa', 3000],
  ['winogrande', 'winogrande/winogrande_1.1_dev.jsonl', 'winogrande', 1267],
  ['winogrande', 'winogrande/llmfoundry_winogrande.jsonl', 'generic-schema', 1267],
];

test('every real file loads in its format with all its examples, and scores', { skip }, async () => {
  const cfg = byteModelConfig({ max_seq_len: 64 });
  const scorer = new ModelScorer(new GlamModel(cfg), initParams(cfg, 1), byteCodec, 'random');
  for (const [task, file, format, n] of FILES) {
    const data = loadTaskData(getTask(task), join(root!, file));
    assert.equal(data.format, format, file);
    assert.equal(data.examples.length, n, file);
    const { result, predictions } = await evaluateTask({ task: getTask(task), ...data }, scorer, {
      shots: 1,
      seed: 0,
      limit: 2,
      beam: 1,
      maxGenTokens: 3,
      contextTokens: cfg.max_seq_len,
      countTokens: (t) => byteCodec.encode(t).length,
    });
    assert.equal(result.n, 2, file);
    assert.ok(result.score >= 0 && result.score <= 100, file);
    assert.equal(predictions.length, 2);
  }
});

test('a directory of task folders: each task finds its own folder and prefers the release format', {
  skip,
}, () => {
  const picks: Record<string, string> = {
    nq: 'NQ-open.dev.jsonl',
    boolq: 'superglue_BoolQ_val.jsonl',
    winogrande: 'winogrande_1.1_dev.jsonl',
    copa: 'superglue_COPA_val.jsonl',
  };
  for (const [task, file] of Object.entries(picks)) {
    assert.ok(loadTaskData(getTask(task), root!).source.endsWith(file), task);
  }
});
