/**
 * Release formats of the generation tasks and LAMBADA: TriviaQA, NQ-open,
 * WebQuestions, SQuAD v2, DROP, QuAC and CoQA, with lm-evaluation-harness's prompt
 * wording. Conversational sets (QuAC, CoQA) give one example per question, its
 * context holding the dialogue so far with the gold answers.
 */
import { type DropAnswer, type Example, type GenExample, NO_ANSWER } from '../examples.js';
import { type DataFile, EvalDataError, Fields } from '../io.js';
import { type Format, firstRecord, hasKeys, mapRecords, sp } from './format.js';

const uniq = (xs: string[]) => [...new Set(xs.filter((x) => x.trim() !== ''))];
const question = (q: string) => (/[?]\s*$/.test(q) ? q.trim() : `${q.trim()}?`);

/** The objects in the array `key` of a single-object JSON release, named `file: key[i]` in messages. */
function topRecords(file: DataFile, key: string): Fields[] {
  return Fields.of(file.json, file.path)
    .array(key)
    .map((v, i) => Fields.of(v, `${file.path}: ${key}[${i}]`));
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first entry of a release's top-level `data` array, for detection. */
const firstData = (f: DataFile): unknown =>
  isObject(f.json) && Array.isArray(f.json.data) ? f.json.data[0] : undefined;

/** A TriviaQA record's field names: the release capitalises them, the JSONL export does not. */
interface TriviaqaKeys {
  id: string;
  question: string;
  answer: string;
  value: string;
  aliases: string;
}

function triviaqaExample(r: Fields, i: number, k: TriviaqaKeys): Example {
  const a = r.obj(k.answer);
  return {
    type: 'gen',
    id: r.has(k.id) ? r.text(k.id) : String(i),
    context: `Question: ${question(r.str(k.question))}\nAnswer:`,
    answers: uniq([a.str(k.value), ...(a.has(k.aliases) ? a.strings(k.aliases) : [])]),
  };
}

/** lm-eval's lambada_openai JSONL {text}: the passage's last word is the continuation. */
export const lambadaJsonl: Format = {
  id: 'lambada-jsonl',
  description: 'LAMBADA JSONL {text} (the last word is predicted)',
  detect: (f) => hasKeys(f, 'text') && !hasKeys(f, 'pronoun'),
  load: (file) => mapRecords<Example>(file, (r, i) => lambadaPassage(r.str('text'), String(i), r.where)),
};

/** The original release: one passage per line. */
export const lambadaText: Format = {
  id: 'lambada-text',
  description: 'LAMBADA plain text, one passage per line (the last word is predicted)',
  detect: (f) =>
    f.json === undefined && f.jsonl === undefined && f.table === undefined && f.text.trim() !== '',
  load: (file) =>
    file.text
      .split('\n')
      .map((line, i) => ({ line: line.trim(), i }))
      .filter(({ line }) => line !== '')
      .map(({ line, i }) => lambadaPassage(line, String(i), `${file.path}:${i + 1}`)),
};

function lambadaPassage(text: string, id: string, where: string): Example {
  const t = text.trim();
  const cut = t.lastIndexOf(' ');
  if (cut <= 0) throw new EvalDataError(`${where}: a LAMBADA passage needs at least two words`);
  return { type: 'lm', id, context: t.slice(0, cut), continuation: t.slice(cut) };
}

/** The release (e.g. wikipedia-dev.json): {Data: [{Question, Answer: {Value, Aliases}}]}. */
export const triviaqaJson: Format = {
  id: 'triviaqa-json',
  description: 'TriviaQA release JSON {Data: [{Question, Answer: {Value, Aliases}}]}',
  detect: (f) => isObject(f.json) && Array.isArray(f.json.Data),
  load: (file) =>
    topRecords(file, 'Data').map((r, i) =>
      triviaqaExample(r, i, {
        id: 'QuestionId',
        question: 'Question',
        answer: 'Answer',
        value: 'Value',
        aliases: 'Aliases',
      }),
    ),
};

/** The common export: {question, answer: {value, aliases}} per line. */
export const triviaqaJsonl: Format = {
  id: 'triviaqa-jsonl',
  description: 'TriviaQA JSONL export {question, answer: {value, aliases}}',
  detect: (f) => hasKeys(f, 'question', 'answer') && isObject(firstRecord(f)?.answer),
  load: (file) =>
    mapRecords<Example>(file, (r, i) =>
      triviaqaExample(r, i, {
        id: 'question_id',
        question: 'question',
        answer: 'answer',
        value: 'value',
        aliases: 'aliases',
      }),
    ),
};

export const nqOpen: Format = {
  id: 'nq-open',
  description: 'NQ-open JSONL {question, answer: [...]}',
  detect: (f) => hasKeys(f, 'question', 'answer') && Array.isArray(firstRecord(f)?.answer),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => ({
      type: 'gen',
      id: String(i),
      context: `Q: ${question(r.str('question'))}\nA:`,
      answers: uniq(r.strings('answer')),
    })),
};

/** WebQuestions' targetValue: (list (description "Jamaican English") (description Creole)). */
export function webqsTargets(target: string): string[] {
  const out: string[] = [];
  for (const m of target.matchAll(/\(description\s+(?:"((?:[^"\\]|\\.)*)"|([^)]*))\)/g)) {
    out.push((m[1] ?? m[2] ?? '').replace(/\\(.)/g, '$1').trim());
  }
  return out;
}

/** The release (webquestions.examples.test.json: [{utterance, targetValue}]) or the export {question, answers}. */
export const webqs: Format = {
  id: 'webquestions',
  description: 'WebQuestions JSON [{utterance, targetValue}] or JSONL {question, answers: [...]}',
  detect: (f) => hasKeys(f, 'utterance', 'targetValue') || hasKeys(f, 'question', 'answers', 'url'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const q = r.has('utterance') ? r.str('utterance') : r.str('question');
      const answers = r.has('targetValue') ? webqsTargets(r.str('targetValue')) : r.strings('answers');
      if (answers.length === 0) throw new EvalDataError(`${r.where}: no answer in the record`);
      return {
        type: 'gen',
        id: String(i),
        context: `Question: ${q.trim()}\nAnswer:`,
        answers: uniq(answers),
      };
    }),
};

/** SQuAD v2 JSON {data: [{title, paragraphs: [{context, qas: [{question, answers, is_impossible}]}]}]}. */
export const squadv2: Format = {
  id: 'squad-v2',
  description: 'SQuAD v2 JSON {data: [{title, paragraphs: [{context, qas}]}]}',
  detect: (f) => {
    const d = firstData(f);
    return isObject(d) && Array.isArray(d.paragraphs);
  },
  load: (file) => {
    const out: Example[] = [];
    topRecords(file, 'data').forEach((d, di) => {
      const title = d.has('title') ? d.str('title').replaceAll('_', ' ') : '';
      d.objects('paragraphs').forEach((p, pi) => {
        const background = p.str('context');
        p.objects('qas').forEach((q, qi) => {
          const impossible = q.has('is_impossible') && q.bool('is_impossible');
          const answers = impossible ? [] : q.objects('answers').map((a) => a.str('text'));
          out.push({
            type: 'gen',
            id: q.has('id') ? q.text('id') : `${di}/${pi}/${qi}`,
            context: `Title: ${title}\n\nBackground: ${background}\n\nQuestion: ${q.str('question')}\n\nAnswer:`,
            answers: uniq(answers),
          });
        });
      });
    });
    return out;
  },
};

/** A DROP answer object {number, date: {day, month, year}, spans} as strings. */
function dropAnswer(a: Fields): DropAnswer | undefined {
  const number = a.has('number') ? a.text('number').trim() : '';
  if (number !== '') return { spans: [number] };
  const spans = a.has('spans') ? a.strings('spans').filter((s) => s.trim() !== '') : [];
  if (spans.length > 0) return { spans };
  if (a.has('date')) {
    const d = a.obj('date');
    const parts = ['day', 'month', 'year']
      .map((k) => (d.has(k) ? d.text(k).trim() : ''))
      .filter((s) => s !== '');
    if (parts.length > 0) return { spans: [parts.join(' ')] };
  }
  return undefined;
}

/** DROP JSON {passage_id: {passage, qa_pairs: [{question, answer, validated_answers}]}}. */
export const drop: Format = {
  id: 'drop-json',
  description: 'DROP JSON {<passage id>: {passage, qa_pairs: [{question, answer, validated_answers}]}}',
  detect: (f) => {
    if (!isObject(f.json)) return false;
    const first = Object.values(f.json)[0];
    return isObject(first) && Array.isArray(first.qa_pairs);
  },
  load: (file) => {
    const out: Example[] = [];
    for (const [pid, pv] of Object.entries(file.json as Record<string, unknown>)) {
      const p = Fields.of(pv, `${file.path}: ${pid}`);
      const passage = p.str('passage');
      p.objects('qa_pairs').forEach((q, qi) => {
        const golds: DropAnswer[] = [];
        const main = dropAnswer(q.obj('answer'));
        if (main !== undefined) golds.push(main);
        if (q.has('validated_answers')) {
          for (const v of q.objects('validated_answers')) {
            const a = dropAnswer(v);
            if (a !== undefined) golds.push(a);
          }
        }
        if (golds.length === 0) throw new EvalDataError(`${q.where}: the question has no answer`);
        const ex: GenExample = {
          type: 'gen',
          id: q.has('query_id') ? q.text('query_id') : `${pid}/${qi}`,
          context: `Passage: ${passage}\nQuestion: ${q.str('question')}\nAnswer:`,
          answers: golds.map((g) => g.spans.join(', ')),
          drop: golds,
        };
        out.push(ex);
      });
    }
    return out;
  },
};

const CANNOT = 'CANNOTANSWER';

/** QuAC JSON {data: [{title, section_title, paragraphs: [{context, qas: [{question, answers, orig_answer}]}]}]}. */
export const quac: Format = {
  id: 'quac-json',
  description:
    'QuAC JSON {data: [{title, paragraphs: [{context, qas: [{question, answers, orig_answer}]}]}]}',
  detect: (f) => {
    const d = firstData(f);
    const p =
      isObject(d) && Array.isArray(d.paragraphs) ? (d.paragraphs[0] as Record<string, unknown>) : undefined;
    const q = isObject(p) && Array.isArray(p.qas) ? (p.qas[0] as Record<string, unknown>) : undefined;
    return isObject(q) && ('orig_answer' in q || 'followup' in q);
  },
  load: (file) => {
    const out: Example[] = [];
    topRecords(file, 'data').forEach((d, di) => {
      const title = [
        d.has('title') ? d.str('title') : '',
        d.has('section_title') ? d.str('section_title') : '',
      ]
        .filter((s) => s !== '')
        .join(', ');
      d.objects('paragraphs').forEach((p, pi) => {
        const paragraph = p.str('context').replace(CANNOT, '').trim();
        let dialogue = `TITLE: ${title}\nPARAGRAPH: ${paragraph}`;
        p.objects('qas').forEach((q, qi) => {
          const texts = q.objects('answers').map((a) => a.str('text'));
          const orig = q.has('orig_answer') ? q.obj('orig_answer').str('text') : (texts[0] ?? CANNOT);
          const answers = uniq([orig, ...texts]).filter((t) => t !== CANNOT);
          const unanswerable = orig === CANNOT;
          out.push({
            type: 'gen',
            id: q.has('id') ? q.text('id') : `${di}/${pi}/${qi}`,
            group: `${di}/${pi}`,
            context: `${dialogue}\n\nQ: ${q.str('question')}\n\nA:`,
            answers: unanswerable ? [] : answers,
          });
          dialogue += `\n\nQ: ${q.str('question')}\n\nA: ${unanswerable ? NO_ANSWER : orig}`;
        });
      });
    });
    return out;
  },
};

/** CoQA JSON {data: [{story, questions: [{input_text, turn_id}], answers: [...], additional_answers}]}. */
export const coqa: Format = {
  id: 'coqa-json',
  description: 'CoQA JSON {data: [{story, questions, answers, additional_answers}]}',
  detect: (f) => {
    const d = firstData(f);
    return isObject(d) && typeof d.story === 'string' && Array.isArray(d.questions);
  },
  load: (file) => {
    const out: Example[] = [];
    topRecords(file, 'data').forEach((d, di) => {
      const questions = d.objects('questions').map((q) => q.str('input_text'));
      const answers = d.objects('answers').map((a) => a.str('input_text'));
      if (answers.length !== questions.length) {
        throw new EvalDataError(`${d.where}: ${questions.length} questions but ${answers.length} answers`);
      }
      const extra: string[][] = questions.map(() => []);
      if (d.has('additional_answers')) {
        for (const list of Object.values(d.obj('additional_answers').rec)) {
          if (!Array.isArray(list)) continue;
          list.forEach((a, k) => {
            if (isObject(a) && typeof a.input_text === 'string' && k < extra.length)
              extra[k]!.push(a.input_text);
          });
        }
      }
      let dialogue = d.str('story').trim();
      const id = d.has('id') ? d.text('id') : String(di);
      questions.forEach((q, k) => {
        out.push({
          type: 'gen',
          id: `${id}/${k + 1}`,
          group: id,
          context: `${dialogue}\n\nQ: ${q}\n\nA:`,
          answers: uniq([answers[k]!, ...extra[k]!]),
        });
        dialogue += `\n\nQ: ${q}\n\nA:${sp(answers[k]!)}`;
      });
    });
    return out;
  },
};
