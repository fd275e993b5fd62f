/**
 * SuperGLUE's JSONL release (one object per line, as in its BoolQ.zip ... ReCoRD.zip),
 * with lm-evaluation-harness's prompt wording. Labels are strings in the release and
 * integers or booleans in the common exports; both are accepted.
 */
import type { ChoiceExample, Example } from '../examples.js';
import { EvalDataError, Fields } from '../io.js';
import { checkGold, type Format, firstRecord, hasKeys, mapRecords, sp } from './format.js';

/** A label given as one of `names` (the release) or as its index (exports). */
function namedLabel(r: Fields, names: string[]): number {
  const v = r.rec.label;
  if (typeof v === 'string' && names.includes(v)) return names.indexOf(v);
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < names.length) return v;
  throw new EvalDataError(
    `${r.where}: field 'label' must be one of ${names.map((n, i) => `'${n}' (${i})`).join(', ')}; got ${JSON.stringify(v)}`,
  );
}

const yesNo = [' no', ' yes'];

export const boolq: Format = {
  id: 'superglue-boolq',
  description: 'SuperGLUE BoolQ JSONL {question, passage, label}',
  detect: (f) => hasKeys(f, 'question', 'passage', 'label'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => ({
      type: 'choice',
      id: r.has('idx') ? r.text('idx') : String(i),
      context: `${r.str('passage')}\nQuestion: ${r.str('question').replace(/\?*$/, '?')}\nAnswer:`,
      continuations: yesNo,
      gold: r.bool('label') ? 1 : 0,
    })),
};

export const cb: Format = {
  id: 'superglue-cb',
  description: 'SuperGLUE CB JSONL {premise, hypothesis, label: entailment|contradiction|neutral}',
  detect: (f) => hasKeys(f, 'premise', 'hypothesis', 'label') && !hasKeys(f, 'uid'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => ({
      type: 'choice',
      id: r.has('idx') ? r.text('idx') : String(i),
      context: `${r.str('premise')}\nQuestion: ${r.str('hypothesis')}. True, False, or Neither?\nAnswer:`,
      continuations: [' True', ' False', ' Neither'],
      gold: namedLabel(r, ['entailment', 'contradiction', 'neutral']),
    })),
};

export const rte: Format = {
  id: 'superglue-rte',
  description: 'SuperGLUE RTE JSONL {premise, hypothesis, label: entailment|not_entailment}',
  detect: (f) => hasKeys(f, 'premise', 'hypothesis', 'label') && !hasKeys(f, 'uid'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => ({
      type: 'choice',
      id: r.has('idx') ? r.text('idx') : String(i),
      context: `${r.str('premise')}\nQuestion: ${r.str('hypothesis')} True or False?\nAnswer:`,
      continuations: [' True', ' False'],
      gold: namedLabel(r, ['entailment', 'not_entailment']),
    })),
};

/** "It rained." -> "It rained" + connector; the choice continues the sentence in lower case. */
export const copa: Format = {
  id: 'superglue-copa',
  description: 'SuperGLUE COPA JSONL {premise, choice1, choice2, question: cause|effect, label}',
  detect: (f) => hasKeys(f, 'premise', 'choice1', 'choice2', 'question'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const q = r.str('question');
      if (q !== 'cause' && q !== 'effect') {
        throw new EvalDataError(`${r.where}: field 'question' must be 'cause' or 'effect'; got '${q}'`);
      }
      const premise = r
        .str('premise')
        .trim()
        .replace(/[.!?]$/, '');
      const lower = (s: string) => s.charAt(0).toLowerCase() + s.slice(1);
      return {
        type: 'choice',
        id: r.has('idx') ? r.text('idx') : String(i),
        context: `${premise} ${q === 'cause' ? 'because' : 'therefore'}`,
        continuations: [sp(lower(r.str('choice1'))), sp(lower(r.str('choice2')))],
        gold: checkGold(r.int('label'), 2, r.where),
      };
    }),
};

export const wic: Format = {
  id: 'superglue-wic',
  description: 'SuperGLUE WiC JSONL {word, sentence1, sentence2, start1, end1, label}',
  detect: (f) => hasKeys(f, 'sentence1', 'sentence2', 'start1', 'end1'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const s1 = r.str('sentence1');
      const word = s1.slice(r.int('start1'), r.int('end1'));
      return {
        type: 'choice',
        id: r.has('idx') ? r.text('idx') : String(i),
        context: `Sentence 1: ${s1}\nSentence 2: ${r.str('sentence2')}\nQuestion: Is the word '${word}' used in the same way in the two sentences above?\nAnswer:`,
        continuations: yesNo,
        gold: r.bool('label') ? 1 : 0,
      };
    }),
};

/** SuperGLUE WSC: does the marked pronoun refer to the noun? (span indices count words). */
export const wsc: Format = {
  id: 'superglue-wsc',
  description: 'SuperGLUE WSC JSONL {text, target: {span1_text, span2_index, span2_text}, label}',
  detect: (f) => {
    const r = firstRecord(f);
    return r !== undefined && typeof r.text === 'string' && typeof r.target === 'object';
  },
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const text = r.str('text');
      const t = r.obj('target');
      const pronoun = t.str('span2_text');
      const words = text.split(/\s+/).filter((w) => w !== '');
      const k = t.int('span2_index');
      if (k < 0 || k >= words.length)
        throw new EvalDataError(`${t.where}: span2_index ${k} is outside the text`);
      const pre = words.slice(0, k).join(' ');
      const post = words.slice(k).join(' ').slice(pronoun.length);
      const passage = `${pre}${pre === '' ? '' : ' '}*${pronoun}*${post}`;
      return {
        type: 'choice',
        id: r.has('idx') ? r.text('idx') : String(i),
        context: `Passage: ${passage}\nQuestion: In the passage above, does the pronoun "*${pronoun}*" refer to "*${t.str('span1_text')}*"?\nAnswer:`,
        continuations: yesNo,
        gold: r.bool('label') ? 1 : 0,
      };
    }),
};

/** Paragraph markup of the release ("<b>Sent 1: </b>...<br>") removed. */
function plainParagraph(text: string): string {
  return text
    .replace(/<b>Sent \d+: <\/b>/g, '')
    .replace(/<br\s*\/?>/g, ' ')
    .replace(/[ \t]+/g, ' ')
    .trim();
}

/** MultiRC: every answer option of a question is judged correct or not; the question is the group. */
export const multirc: Format = {
  id: 'superglue-multirc',
  description: 'SuperGLUE MultiRC JSONL {passage: {text, questions: [{question, answers: [{text, label}]}]}}',
  detect: (f) => {
    const r = firstRecord(f);
    const p = r?.passage as Record<string, unknown> | undefined;
    return typeof p === 'object' && p !== null && Array.isArray(p.questions);
  },
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const passage = r.obj('passage');
      const paragraph = plainParagraph(passage.str('text'));
      const out: ChoiceExample[] = [];
      passage.array('questions').forEach((qv, qi) => {
        const q = fieldsOf(qv, `${passage.where}.questions[${qi}]`);
        const group = `${r.has('idx') ? r.text('idx') : i}/${q.has('idx') ? q.text('idx') : qi}`;
        q.array('answers').forEach((av, ai) => {
          const a = fieldsOf(av, `${q.where}.answers[${ai}]`);
          out.push({
            type: 'choice',
            id: `${group}/${a.has('idx') ? a.text('idx') : ai}`,
            group,
            context: `${paragraph}\nQuestion: ${q.str('question')}\nAnswer: ${a.str('text')}\nIs the answer correct?`,
            continuations: yesNo,
            gold: a.bool('label') ? 1 : 0,
          });
        });
      });
      return out;
    }),
};

/** ReCoRD: the query's @placeholder filled with each passage entity; the passage's highlights as a list. */
export const record: Format = {
  id: 'superglue-record',
  description: 'SuperGLUE ReCoRD JSONL {passage: {text, entities: [{start, end}]}, qas: [{query, answers}]}',
  detect: (f) => hasKeys(f, 'passage', 'qas'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const passage = r.obj('passage');
      const text = passage.str('text');
      const spans = passage.array('entities').map((ev, k) => {
        const e = fieldsOf(ev, `${passage.where}.entities[${k}]`);
        return text.slice(e.int('start'), e.int('end') + 1); // end is inclusive in the release
      });
      const entities = [...new Set(spans)].sort();
      const [first, ...highlights] = text.trim().split('\n@highlight\n');
      let context = `${first}\n\n`;
      for (const h of highlights) context += `  - ${h}.\n`;
      return r.array('qas').map((qv, qi): ChoiceExample => {
        const q = fieldsOf(qv, `${r.where}.qas[${qi}]`);
        const query = q.str('query');
        const answers = [
          ...new Set(q.array('answers').map((av, k) => fieldsOf(av, `${q.where}.answers[${k}]`).str('text'))),
        ];
        const gold = entities.findIndex((e) => answers.includes(e));
        if (entities.length === 0) throw new EvalDataError(`${r.where}: the passage lists no entities`);
        return {
          type: 'choice',
          id: q.has('idx') ? q.text('idx') : `${i}/${qi}`,
          context,
          continuations: entities.map((e) => `  - ${query.replaceAll('@placeholder', e)}`),
          gold: Math.max(0, gold),
          entities,
          answers,
        };
      });
    }),
};

function fieldsOf(v: unknown, where: string): Fields {
  return Fields.of(v, where);
}
