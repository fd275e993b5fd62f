/**
 * Every data format on a small fixture written for this project: recognised from
 * its content, loaded into the prompts lm-evaluation-harness would build, with the
 * right gold answers; and clear errors for unrecognised or malformed files.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { loadTaskData } from '../../src/eval/data.js';
import type { ChoiceExample, Example, GenExample, LmExample } from '../../src/eval/examples.js';
import { parseTable } from '../../src/eval/io.js';
import { getTask, TASKS } from '../../src/eval/tasks.js';
import { evalFixture } from './helpers.js';

const F = (name: string) => evalFixture('formats', name);

function load(task: string, file: string): { examples: Example[]; format: string } {
  return loadTaskData(getTask(task), F(file));
}
const choice = (e: Example) => e as ChoiceExample;
const gen = (e: Example) => e as GenExample;

test('generic multiple choice: the query is the context; a question gets the Answer: cue where the task asks', () => {
  const { examples, format } = load('arc_e', 'generic_mc.jsonl');
  assert.equal(format, 'generic-mc');
  assert.equal(examples.length, 2);
  const [a, b] = examples.map(choice);
  assert.equal(a!.context, 'Question: What do bees make?\nAnswer:');
  assert.deepEqual(a!.continuations, [' honey', ' steel', ' glass']);
  assert.equal(a!.gold, 0);
  assert.equal(b!.context, 'Question: Which is a colour?\nAnswer:', 'a query that has the cue keeps it once');
  // COPA's generic prompt is a sentence to continue: no cue.
  const copa = choice(load('copa', 'generic_mc.jsonl').examples[0]!);
  assert.equal(copa.context, 'Question: What do bees make?');
});

test('generic schema, language modelling and question answering', () => {
  const s = choice(load('winogrande', 'generic_schema.jsonl').examples[0]!);
  assert.deepEqual(s.context, [
    'The cup fell off the table because the cup',
    'The cup fell off the table because the table',
  ]);
  assert.deepEqual(s.continuations, [' was tilted.', ' was tilted.']);
  assert.equal(s.gold, 1);
  const lm = load('lambada', 'generic_lm.jsonl');
  assert.equal(lm.format, 'generic-lm');
  const [l1, l2] = lm.examples as LmExample[];
  assert.equal(l1!.continuation, ' Tom');
  assert.equal(l2!.continuation, 'tea', 'a context ending in a space needs no delimiter');
  const qa = gen(load('triviaqa', 'generic_qa.jsonl').examples[0]!);
  assert.equal(qa.context, 'Question: What is the capital of France?\nAnswer:');
  assert.deepEqual(qa.answers, ['Paris', 'City of Paris']);
});

test('SuperGLUE BoolQ, CB, RTE, WiC: lm-eval prompts and label names or indices', () => {
  const boolq = load('boolq', 'superglue_boolq.jsonl').examples.map(choice);
  assert.equal(
    boolq[0]!.context,
    'Sky -- The sky looks blue on a clear day.\nQuestion: is the sky blue?\nAnswer:',
  );
  assert.deepEqual(boolq[0]!.continuations, [' no', ' yes']);
  assert.deepEqual(
    boolq.map((e) => e.gold),
    [1, 0],
  );
  const cb = load('cb', 'superglue_cb.jsonl').examples.map(choice);
  assert.equal(
    cb[0]!.context,
    'It was raining, so she took an umbrella.\nQuestion: it was raining. True, False, or Neither?\nAnswer:',
  );
  assert.deepEqual(cb[0]!.continuations, [' True', ' False', ' Neither']);
  assert.deepEqual(
    cb.map((e) => e.gold),
    [0, 1, 2],
  );
  const rte = load('rte', 'superglue_rte.jsonl').examples.map(choice);
  assert.equal(
    rte[0]!.context,
    'The museum opened in 1990.\nQuestion: The museum exists. True or False?\nAnswer:',
  );
  assert.deepEqual(
    rte.map((e) => e.gold),
    [0, 1],
  );
  const wic = choice(load('wic', 'superglue_wic.jsonl').examples[0]!);
  assert.match(
    wic.context as string,
    /Question: Is the word 'bank' used in the same way in the two sentences above\?\nAnswer:$/,
  );
  assert.equal(wic.gold, 0);
});

test('SuperGLUE COPA: the premise continues with because/therefore and a lower-cased choice', () => {
  const [cause, effect] = load('copa', 'superglue_copa.jsonl').examples.map(choice);
  assert.equal(cause!.context, 'The glass broke because');
  assert.deepEqual(cause!.continuations, [' someone dropped it.', ' someone washed it.']);
  assert.equal(effect!.context, 'The sun came out therefore');
  assert.equal(effect!.gold, 0);
});

test('SuperGLUE WSC marks the pronoun by its word index', () => {
  const w = choice(load('wsc', 'superglue_wsc.jsonl').examples[0]!);
  assert.equal(
    w.context,
    'Passage: Mark told Pete many lies about himself, which Pete included in *his* book.\nQuestion: In the passage above, does the pronoun "*his*" refer to "*Mark*"?\nAnswer:',
  );
  assert.equal(w.gold, 0);
});

test('SuperGLUE MultiRC: one example per answer option, grouped by question, markup removed', () => {
  const ex = load('multirc', 'superglue_multirc.jsonl').examples.map(choice);
  assert.equal(ex.length, 3);
  assert.equal(ex[0]!.group, '0/0');
  assert.equal(ex[1]!.group, '0/0');
  assert.equal(ex[2]!.group, '0/1');
  assert.equal(
    ex[0]!.context,
    'Anna has a red bike. She rides it to school.\nQuestion: What colour is the bike?\nAnswer: Red\nIs the answer correct?',
  );
  assert.deepEqual(
    ex.map((e) => e.gold),
    [1, 0, 1],
  );
});

test('SuperGLUE ReCoRD: unique entities (inclusive ends), highlights as a list, placeholder filled', () => {
  const r = choice(load('record', 'superglue_record.jsonl').examples[0]!);
  assert.deepEqual(r.entities, ['Alice', 'Bob', 'Louvre', 'Paris']);
  assert.equal(
    r.context,
    'Alice met Bob in Paris. They visited the Louvre.\n\n  - Alice and Bob travel.\n  - The Louvre was busy.\n',
  );
  assert.equal(r.continuations[0], '  - Alice was happy to see the museum.');
  assert.deepEqual(r.answers, ['Alice']);
  assert.equal(r.gold, 0);
});

test('HellaSwag JSONL (markup cleaned, ctx_b capitalised) and the 6-line text layout, also bzip2-compressed', () => {
  const h = load('hellaswag', 'hellaswag.jsonl').examples.map(choice);
  assert.equal(
    h[0]!.context,
    'Removing ice from car: Then, the man writes over the snow covering the window of a car, and a woman wearing winter clothes smiles. Then',
  );
  assert.equal(h[0]!.continuations[3], ' , the man continues removing the snow on his car.');
  assert.equal(h[0]!.gold, 3);
  assert.equal(h[1]!.context, 'Home and Garden: How to plant tulips. Choose a spot. Dig a hole');
  assert.equal(h[1]!.continuations[2], ' with a spoon Then stop.');
  const t = load('hellaswag', 'hellaswag_text.txt');
  assert.equal(t.format, 'hellaswag-text');
  assert.equal(t.examples.length, 2);
  assert.equal(choice(t.examples[0]!).context, 'A dog runs in a park. it');
  assert.deepEqual(choice(t.examples[0]!).continuations, [
    ' sits on a bench.',
    ' catches a ball.',
    ' flies away.',
    ' reads a book.',
  ]);
  assert.equal(choice(t.examples[0]!).gold, 1);
  const bz = load('hellaswag', 'compressed/hellaswag_text.txt.bz2');
  assert.deepEqual(bz.examples, t.examples);
});

test('PIQA with a labels file beside it, and merged', () => {
  const p = load('piqa', 'piqa_valid.jsonl').examples.map(choice);
  assert.equal(p[0]!.context, 'Question: To keep bread fresh,\nAnswer:');
  assert.deepEqual(p[0]!.continuations, [' store it in a sealed bag.', ' leave it in the rain.']);
  assert.deepEqual(
    p.map((e) => e.gold),
    [0, 1],
  );
  assert.equal(choice(load('piqa', 'piqa_merged.jsonl').examples[0]!).gold, 0);
});

test('ARC and OpenBookQA: release layout and export layout, letter and number keys', () => {
  const a = load('arc_c', 'arc.jsonl').examples.map(choice);
  assert.equal(a[0]!.context, 'Question: Which planet is closest to the Sun?\nAnswer:');
  assert.deepEqual(
    a.map((e) => e.gold),
    [0, 0],
  );
  assert.equal(choice(load('arc_e', 'arc_export.jsonl').examples[0]!).continuations[1], ' sand');
  const o = choice(load('openbookqa', 'openbookqa.jsonl').examples[0]!);
  assert.equal(o.context, 'The sun is responsible for');
  assert.equal(o.gold, 1);
  assert.equal(
    choice(load('openbookqa', 'openbookqa_export.jsonl').examples[0]!).context,
    'A magnet attracts',
  );
});

test('WinoGrande and Winograd (JSONL and the original XML): the option replaces the blank or pronoun', () => {
  const w = choice(load('winogrande', 'winogrande.jsonl').examples[0]!);
  assert.deepEqual(w.context, [
    'The trophy did not fit in the case because the trophy',
    'The trophy did not fit in the case because the case',
  ]);
  assert.deepEqual(w.continuations, [' was too big.', ' was too big.']);
  assert.equal(w.gold, 0);
  const j = choice(load('winograd', 'wsc273.jsonl').examples[0]!);
  assert.deepEqual(j.context, [
    'The city councilmen refused the demonstrators a permit because the city councilmen',
    'The city councilmen refused the demonstrators a permit because the demonstrators',
  ]);
  assert.deepEqual(j.continuations, [' feared violence.', ' feared violence.']);
  const x = load('winograd', 'WSCollection.xml');
  assert.equal(x.format, 'wsc273-xml');
  assert.deepEqual(choice(x.examples[0]!).context, j.context);
  assert.equal(choice(x.examples[0]!).gold, 0);
});

test('StoryCloze CSV with quoted fields', () => {
  const s = load('storycloze', 'storycloze.csv').examples.map(choice);
  assert.equal(
    s[0]!.context,
    'Tom was hungry. He opened the fridge, looking for food. It was empty. He went to the store.',
  );
  assert.deepEqual(
    s.map((e) => e.gold),
    [0, 1],
  );
  assert.equal(s[1]!.continuations[1], ' She was relieved.');
});

test('RACE: a directory of per-article files splits into middle and high; the JSONL export too', () => {
  const m = loadTaskData(getTask('race_m'), F('race'));
  assert.equal(m.format, 'race-article');
  assert.equal(m.examples.length, 2);
  const q = choice(m.examples[0]!);
  assert.equal(
    q.context,
    'Article: Lily has a dog. She is happy with it.\n\nQuestion: What pet does Lily have?\nAnswer:',
  );
  assert.equal(q.gold, 1);
  const h = loadTaskData(getTask('race_h'), F('race'));
  assert.equal(h.examples.length, 1);
  assert.equal(choice(h.examples[0]!).gold, 2);
  assert.equal(load('race_m', 'race.jsonl').examples.length, 1);
  assert.equal(choice(load('race_h', 'race.jsonl').examples[0]!).gold, 3);
});

test('ANLI: e/n/c labels; True, Neither, False candidates', () => {
  const a = load('anli_r1', 'anli.jsonl').examples.map(choice);
  assert.equal(
    a[0]!.context,
    'The band played until midnight.\nQuestion: The band played music. True, False, or Neither?\nAnswer:',
  );
  assert.deepEqual(a[0]!.continuations, [' True', ' Neither', ' False']);
  assert.deepEqual(
    a.map((e) => e.gold),
    [0, 1, 2],
  );
});

test('LAMBADA: {text} JSONL and plain text, the last word is the continuation', () => {
  const j = load('lambada', 'lambada.jsonl').examples[0] as LmExample;
  assert.equal(j.context, 'The old man looked at the sea for a long time. Then he smiled at the');
  assert.equal(j.continuation, ' sea');
  const t = load('lambada', 'lambada_plain.txt');
  assert.equal(t.format, 'lambada-text');
  assert.deepEqual(
    t.examples.map((e) => (e as LmExample).continuation),
    [' ball', ' nest'],
  );
});

test('TriviaQA (release JSON and export), NQ-open, WebQuestions (release and export)', () => {
  const r = gen(load('triviaqa', 'triviaqa_release.json').examples[0]!);
  assert.equal(r.context, 'Question: What is the highest mountain on Earth?\nAnswer:');
  assert.deepEqual(r.answers, ['Mount Everest', 'Everest']);
  const e = gen(load('triviaqa', 'triviaqa_export.jsonl').examples[0]!);
  assert.equal(e.context, 'Question: Which ocean is the largest?\nAnswer:');
  assert.deepEqual(e.answers, ['Pacific Ocean', 'Pacific']);
  const nq = gen(load('nq', 'nq_open.jsonl').examples[0]!);
  assert.equal(nq.context, 'Q: who wrote hamlet?\nA:');
  assert.deepEqual(nq.answers, ['William Shakespeare', 'Shakespeare']);
  const w = load('webqs', 'webquestions_release.json').examples.map(gen);
  assert.deepEqual(w[0]!.answers, ['Jamaican English', 'Jamaican Creole English Language']);
  assert.deepEqual(w[1]!.answers, ['Canberra']);
  assert.equal(w[0]!.context, 'Question: what does jamaican people speak?\nAnswer:');
  assert.deepEqual(gen(load('webqs', 'webquestions_export.jsonl').examples[0]!).answers, ['Paris']);
});

test('SQuAD v2: title and background in the prompt; an impossible question has no answers', () => {
  const s = load('squadv2', 'squad_v2.json').examples.map(gen);
  assert.equal(
    s[0]!.context,
    'Title: Solar System\n\nBackground: The Sun is at the centre of eight planets.\n\nQuestion: What is at the centre?\n\nAnswer:',
  );
  assert.deepEqual(s[0]!.answers, ['the Sun', 'Sun']);
  assert.deepEqual(s[1]!.answers, []);
});

test('DROP: numbers, span lists and dates as gold answers', () => {
  const d = load('drop', 'drop.json').examples.map(gen);
  assert.equal(d.length, 3);
  assert.match(
    d[0]!.context,
    /^Passage: The Bears scored .*\nQuestion: How many points did the Bears score in total\?\nAnswer:$/,
  );
  assert.deepEqual(d[0]!.drop, [{ spans: ['21'] }, { spans: ['21'] }]);
  assert.deepEqual(d[1]!.drop, [{ spans: ['Smith', 'Jones'] }]);
  assert.deepEqual(d[2]!.drop, [{ spans: ['3 May 1990'] }]);
});

test('QuAC and CoQA: one example per turn, with the dialogue so far', () => {
  const q = load('quac', 'quac.json').examples.map(gen);
  assert.equal(q.length, 2);
  assert.equal(
    q[0]!.context,
    'TITLE: Ada Lovelace, Work\nPARAGRAPH: Ada Lovelace wrote the first program. She worked with Babbage.\n\nQ: What did she write?\n\nA:',
  );
  assert.deepEqual(q[1]!.answers, [], 'CANNOTANSWER is no answer');
  assert.ok(
    q[1]!.context.includes(
      'Q: What did she write?\n\nA: the first program\n\nQ: Did she have children?\n\nA:',
    ),
  );
  assert.equal(q[0]!.group, q[1]!.group);
  const c = load('coqa', 'coqa.json').examples.map(gen);
  assert.equal(
    c[1]!.context,
    'Once there was a cat named Tom. Tom liked milk.\n\nQ: What was the cat called?\n\nA: Tom\n\nQ: What did he like?\n\nA:',
  );
  assert.deepEqual(c[0]!.answers, ['Tom', 'Tom the cat']);
  assert.deepEqual(c[1]!.answers, ['milk', 'Milk']);
});

test('gzip-compressed files are read by their content', () => {
  const dir = mkdtempSync(join(tmpdir(), 'glam-eval-gz-'));
  try {
    const file = join(dir, 'data.bin');
    writeFileSync(file, gzipSync('{"question": "who wrote hamlet", "answer": ["Shakespeare"]}\n'));
    assert.equal(loadTaskData(getTask('nq'), file).examples.length, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unrecognised file names the formats the task accepts; bad records name file, line and field', () => {
  assert.throws(
    () => load('piqa', 'nq_open.jsonl'),
    (e: Error) => {
      assert.match(e.message, /nq_open\.jsonl: not a format piqa accepts/);
      assert.match(e.message, /PIQA JSONL \{goal, sol1, sol2\}/);
      assert.match(e.message, /generic multiple choice/);
      return true;
    },
  );
  const dir = mkdtempSync(join(tmpdir(), 'glam-eval-bad-'));
  try {
    const file = join(dir, 'boolq.jsonl');
    writeFileSync(
      file,
      '{"question": "q", "passage": "p", "label": true}\n\n{"question": 3, "passage": "p", "label": true}\n',
    );
    assert.throws(
      () => loadTaskData(getTask('boolq'), file),
      /boolq\.jsonl:3: field 'question' must be a string; got 3/,
    );
    const wg = join(dir, 'wg.jsonl');
    writeFileSync(wg, '{"sentence": "A _ b", "option1": "x", "option2": "y", "answer": ""}\n');
    assert.throws(() => loadTaskData(getTask('winogrande'), wg), /field 'answer' must be "1" or "2"/);
    const mc = join(dir, 'mc.jsonl');
    writeFileSync(mc, '{"query": "q", "choices": ["a", "b"], "gold": 2}\n');
    assert.throws(
      () => loadTaskData(getTask('piqa'), mc),
      /mc\.jsonl:1: gold answer 2 is not one of the 2 candidates/,
    );
    assert.throws(
      () => loadTaskData(getTask('piqa'), join(dir, 'missing.jsonl')),
      /no such file or directory/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a directory: the task folder is found by a usual name; validation files are preferred to train files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'glam-eval-dir-'));
  try {
    const nq = join(dir, 'NaturalQuestions');
    mkdirSync(nq);
    writeFileSync(
      join(nq, 'NQ-open.train.jsonl'),
      '{"question": "t1", "answer": ["a"]}\n{"question": "t2", "answer": ["b"]}\n',
    );
    writeFileSync(join(nq, 'NQ-open.dev.jsonl'), '{"question": "d1", "answer": ["a"]}\n');
    const d = loadTaskData(getTask('nq'), dir);
    assert.equal(d.examples.length, 1);
    assert.match(d.source, /NQ-open\.dev\.jsonl$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('every task lists formats, a metric and the paper few-shot K; the CSV reader handles quotes and newlines', () => {
  assert.equal(TASKS.length, 29);
  assert.equal(TASKS.filter((t) => t.group === 'NLG').length, 8);
  for (const t of TASKS) {
    assert.ok(t.formats.length > 0 && t.fewShot > 0, t.id);
  }
  const t = parseTable('a,b\n"x, ""y""","multi\nline"\n');
  assert.deepEqual(t, { header: ['a', 'b'], rows: [['x, "y"', 'multi\nline']] });
  assert.equal(parseTable('a,b\n1,2,3\n'), undefined);
});
