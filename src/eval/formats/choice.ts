/**
 * Release formats of the multiple-choice and schema tasks outside SuperGLUE, with
 * lm-evaluation-harness's prompt wording: HellaSwag, PIQA, ARC, OpenBookQA,
 * WinoGrande, Winograd (WSC273), StoryCloze, RACE and ANLI.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { ChoiceExample, Example } from '../examples.js';
import { type DataFile, EvalDataError, Fields } from '../io.js';
import { answerIndex, checkGold, type Format, hasKeys, mapRecords, sp } from './format.js';

/** HellaSwag's WikiHow markup ("[title]", "[header]", ...) and double spaces removed, as lm-eval does. */
export function hellaswagText(text: string): string {
  return text
    .trim()
    .replaceAll(' [title]', '. ')
    .replace(/\[.*?\]/g, '')
    .replaceAll('  ', ' ');
}

/** Python's str.capitalize: first character upper case, the rest lower case. */
function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1).toLowerCase();
}

export const hellaswagJsonl: Format = {
  id: 'hellaswag-jsonl',
  description: 'HellaSwag JSONL {activity_label, ctx_a, ctx_b, endings, label}',
  detect: (f) => hasKeys(f, 'ctx_a', 'ctx_b', 'endings'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const endings = r.strings('endings');
      const context = hellaswagText(
        `${r.str('activity_label')}: ${r.str('ctx_a')} ${capitalize(r.str('ctx_b'))}`,
      );
      return {
        type: 'choice',
        id: r.has('ind') ? r.text('ind') : String(i),
        context,
        continuations: endings.map((e) => sp(hellaswagText(e))),
        gold: checkGold(r.int('label'), endings.length, r.where),
      };
    }),
};

/** The plain-text layout (llama.cpp's perplexity tool): context, gold index, 4 endings; 6 lines each. */
export const hellaswagText6: Format = {
  id: 'hellaswag-text',
  description: 'HellaSwag plain text, 6 lines per example: context, gold index (0-3), 4 endings',
  detect: (f) => {
    if (f.json !== undefined || f.jsonl !== undefined) return false;
    const lines = f.text.split('\n', 13);
    return (
      lines.length >= 6 &&
      /^[0-3]$/.test(lines[1]!.trim()) &&
      (lines.length < 8 || /^[0-3]$/.test(lines[7]!.trim()))
    );
  },
  load: (file) => {
    const lines = file.text.replace(/\r\n/g, '\n').replace(/\n+$/, '').split('\n');
    if (lines.length % 6 !== 0) {
      throw new EvalDataError(
        `${file.path}: ${lines.length} lines is not a multiple of 6 (context, gold, 4 endings)`,
      );
    }
    const out: Example[] = [];
    for (let k = 0; k < lines.length; k += 6) {
      const gold = lines[k + 1]!.trim();
      if (!/^[0-3]$/.test(gold)) {
        throw new EvalDataError(`${file.path}:${k + 2}: expected the gold ending's index 0-3, got '${gold}'`);
      }
      out.push({
        type: 'choice',
        id: String(k / 6),
        context: lines[k]!,
        continuations: lines.slice(k + 2, k + 6).map((e) => sp(e.trim())),
        gold: Number(gold),
      });
    }
    return out;
  },
};

/**
 * PIQA: {goal, sol1, sol2} with the labels in a separate file (valid.jsonl beside
 * valid-labels.lst, one 0/1 per line), or merged into each record as `label`.
 */
export const piqa: Format = {
  id: 'piqa',
  description: 'PIQA JSONL {goal, sol1, sol2} with labels beside it in <name>-labels.lst, or a label field',
  detect: (f) => hasKeys(f, 'goal', 'sol1', 'sol2'),
  load: (file) => {
    const labels = hasKeys(file, 'label') ? undefined : piqaLabels(file);
    return mapRecords<Example>(file, (r, i) => ({
      type: 'choice',
      id: r.has('id') ? r.text('id') : String(i),
      context: `Question: ${r.str('goal')}\nAnswer:`,
      continuations: [sp(r.str('sol1')), sp(r.str('sol2'))],
      gold: checkGold(labels === undefined ? r.int('label') : labels[i]!, 2, r.where),
    }));
  },
};

function piqaLabels(file: DataFile): number[] {
  const stem = path.basename(file.path).replace(/\.(jsonl|json)(\.gz|\.bz2)?$/, '');
  const candidates = [`${stem}-labels.lst`, `${stem}_labels.lst`, `${stem}-labels.txt`];
  const found = candidates.map((c) => path.join(path.dirname(file.path), c)).find((p) => existsSync(p));
  if (found === undefined) {
    throw new EvalDataError(
      `${file.path}: PIQA records have no 'label' and no labels file beside them (${candidates[0]})`,
    );
  }
  const labels = readFileSync(found, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const n = file.jsonl?.length ?? 0;
  if (labels.length !== n) throw new EvalDataError(`${found}: ${labels.length} labels for ${n} examples`);
  return labels.map((l, i) => {
    if (l !== '0' && l !== '1')
      throw new EvalDataError(`${found}:${i + 1}: label must be 0 or 1, got '${l}'`);
    return Number(l);
  });
}

/**
 * ARC and OpenBookQA share a layout: the release's {question: {stem, choices: [{text,
 * label}]}, answerKey} and the common export's {question | question_stem, choices:
 * {text: [...], label: [...]}, answerKey}.
 */
function arcLike(file: DataFile, prompt: (stem: string) => string): Example[] {
  return mapRecords<Example>(file, (r, i) => {
    let stem: string;
    let texts: string[];
    let labels: string[];
    if (typeof r.rec.question === 'object' && r.rec.question !== null) {
      const q = r.obj('question');
      stem = q.str('stem');
      const cs = q.objects('choices');
      texts = cs.map((c) => c.str('text'));
      labels = cs.map((c) => c.text('label'));
    } else {
      stem = r.has('question_stem') ? r.str('question_stem') : r.str('question');
      const c = r.obj('choices');
      texts = c.strings('text');
      labels = c.array('label').map((l) => String(l));
    }
    return {
      type: 'choice',
      id: r.has('id') ? r.text('id') : String(i),
      context: prompt(stem),
      continuations: texts.map(sp),
      gold: answerIndex(r.text('answerKey'), labels, r.where),
    };
  });
}

export const arc: Format = {
  id: 'arc',
  description:
    'ARC JSONL {question: {stem, choices: [{text, label}]}, answerKey} (or choices: {text, label})',
  detect: (f) => hasKeys(f, 'question', 'answerKey'),
  load: (file) => arcLike(file, (stem) => `Question: ${stem}\nAnswer:`),
};

export const openbookqa: Format = {
  id: 'openbookqa',
  description:
    'OpenBookQA JSONL {question: {stem, choices}, answerKey} (or question_stem, choices: {text, label})',
  detect: (f) => hasKeys(f, 'answerKey') && (hasKeys(f, 'question') || hasKeys(f, 'question_stem')),
  load: (file) => arcLike(file, (stem) => stem),
};

/** WinoGrande: the sentence up to "_" with each option is the context; the rest is scored. */
export const winogrande: Format = {
  id: 'winogrande',
  description: 'WinoGrande JSONL {sentence with _, option1, option2, answer: "1"|"2"}',
  detect: (f) => hasKeys(f, 'sentence', 'option1', 'option2'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const s = r.str('sentence');
      const blank = s.indexOf('_');
      if (blank < 0) throw new EvalDataError(`${r.where}: the sentence has no '_' to fill`);
      const answer = r.text('answer');
      if (answer !== '1' && answer !== '2') {
        throw new EvalDataError(
          `${r.where}: field 'answer' must be "1" or "2" (an unlabelled test file?); got '${answer}'`,
        );
      }
      const rest = sp(s.slice(blank + 1).trim());
      return {
        type: 'choice',
        id: r.has('qID') ? r.str('qID') : String(i),
        context: [s.slice(0, blank) + r.str('option1'), s.slice(0, blank) + r.str('option2')],
        continuations: [rest, rest],
        gold: Number(answer) - 1,
      };
    }),
};

/** The option as it reads in place of the pronoun (lm-eval's WSC273 rules). */
function winogradOption(option: string, pronoun: string, atStart: boolean): string {
  let o = option;
  if (['my', 'his', 'her', 'our', 'their'].includes(pronoun.toLowerCase())) o = `${o}'s`;
  if (!atStart && /^(The|A|An) /.test(o)) o = o.charAt(0).toLowerCase() + o.slice(1);
  return o;
}

function winogradExample(
  id: string,
  text: string,
  pronoun: string,
  loc: number,
  options: string[],
  gold: number,
  where: string,
): ChoiceExample {
  if (text.slice(loc, loc + pronoun.length) !== pronoun) {
    throw new EvalDataError(`${where}: the pronoun '${pronoun}' is not at position ${loc} of the text`);
  }
  const rest = sp(text.slice(loc + pronoun.length).trim());
  return {
    type: 'choice',
    id,
    context: options.map((o) => text.slice(0, loc) + winogradOption(o, pronoun, loc === 0)),
    continuations: options.map(() => rest),
    gold: checkGold(gold, options.length, where),
  };
}

export const winogradJsonl: Format = {
  id: 'wsc273-jsonl',
  description: 'Winograd WSC273 JSONL {text, pronoun, pronoun_loc, options, label}',
  detect: (f) => hasKeys(f, 'text', 'pronoun', 'pronoun_loc', 'options'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) =>
      winogradExample(
        String(i),
        r.str('text'),
        r.str('pronoun'),
        r.int('pronoun_loc'),
        r.strings('options'),
        r.int('label'),
        r.where,
      ),
    ),
};

/** The original WSCollection.xml: <schema><text><txt1/><pron/><txt2/></text><answers/><correctAnswer/>. */
export const winogradXml: Format = {
  id: 'wsc273-xml',
  description: 'Winograd Schema Challenge WSCollection.xml',
  detect: (f) => f.text.includes('<schema>') && f.text.includes('<pron>'),
  load: (file) => {
    const tag = (s: string, name: string) => {
      const m = new RegExp(`<${name}>([\\s\\S]*?)</${name}>`).exec(s);
      return m === null ? undefined : m[1]!.replace(/\s+/g, ' ').trim();
    };
    const out: Example[] = [];
    const schemas = file.text.match(/<schema>[\s\S]*?<\/schema>/g) ?? [];
    schemas.forEach((s, i) => {
      const where = `${file.path}: schema ${i + 1}`;
      const txt1 = tag(s, 'txt1');
      const pron = tag(s, 'pron');
      const txt2 = tag(s, 'txt2');
      const answers = [...s.matchAll(/<answer>([\s\S]*?)<\/answer>/g)].map((m) =>
        m[1]!.replace(/\s+/g, ' ').trim(),
      );
      const correct = tag(s, 'correctAnswer')?.replace(/[^A-Za-z]/g, '');
      if (txt1 === undefined || pron === undefined || txt2 === undefined || answers.length < 2 || !correct) {
        throw new EvalDataError(
          `${where}: expected <txt1>, <pron>, <txt2>, two <answer>s and <correctAnswer>`,
        );
      }
      const head = txt1 === '' ? '' : `${txt1} `;
      const tailSep = /^[.,;:!?']/.test(txt2) ? '' : ' ';
      const text = `${head}${pron}${tailSep}${txt2}`;
      const gold = correct.toUpperCase().charCodeAt(0) - 65;
      out.push(winogradExample(String(i), text, pron, head.length, answers, gold, where));
    });
    return out;
  },
};

export const storyCloze: Format = {
  id: 'storycloze-csv',
  description: 'StoryCloze CSV (InputSentence1..4, RandomFifthSentenceQuiz1/2, AnswerRightEnding)',
  detect: (f) => f.table?.header.includes('RandomFifthSentenceQuiz1') === true,
  load: (file) => {
    const { header, rows } = file.table!;
    const col = (name: string) => {
      const k = header.indexOf(name);
      if (k < 0) throw new EvalDataError(`${file.path}: no column '${name}'`);
      return k;
    };
    const sentences = [1, 2, 3, 4].map((n) => col(`InputSentence${n}`));
    const [q1, q2, ans] = [
      col('RandomFifthSentenceQuiz1'),
      col('RandomFifthSentenceQuiz2'),
      col('AnswerRightEnding'),
    ];
    const idCol = header.indexOf('InputStoryid');
    return rows.map((row, i) => {
      const a = row[ans]!.trim();
      if (a !== '1' && a !== '2') {
        throw new EvalDataError(`${file.path}:${i + 2}: AnswerRightEnding must be 1 or 2, got '${a}'`);
      }
      return {
        type: 'choice',
        id: idCol >= 0 ? row[idCol]! : String(i),
        context: sentences.map((k) => row[k]!.trim()).join(' '),
        continuations: [sp(row[q1]!.trim()), sp(row[q2]!.trim())],
        gold: Number(a) - 1,
      };
    });
  },
};

const LETTERS = ['A', 'B', 'C', 'D', 'E', 'F'];

/** Whether a RACE record belongs to the task's level ('middle' for race_m, 'high' for race_h), when it says. */
function raceLevelOk(task: string, where: string): boolean {
  const level = /(^|[/\\_-])(middle|high)/i.exec(where)?.[2]?.toLowerCase();
  if (level === undefined) return true;
  return task === 'race_m' ? level === 'middle' : task === 'race_h' ? level === 'high' : true;
}

function raceQuestion(
  id: string,
  article: string,
  question: string,
  options: string[],
  answer: string,
  where: string,
): ChoiceExample {
  return {
    type: 'choice',
    id,
    context: `Article: ${article}\n\nQuestion: ${question}\nAnswer:`,
    continuations: options.map(sp),
    gold: answerIndex(answer, LETTERS.slice(0, options.length), where),
  };
}

/** The release: one JSON object per article file {article, questions, options, answers, id} (files named *.txt). */
export const raceArticle: Format = {
  id: 'race-article',
  description: 'RACE per-article JSON files {article, questions, options, answers} (RACE/dev/middle/*.txt)',
  perFile: true,
  detect: (f) => {
    const j = f.json as Record<string, unknown> | undefined;
    return (
      typeof j === 'object' && j !== null && !Array.isArray(j) && 'article' in j && Array.isArray(j.questions)
    );
  },
  load: (file, ctx) => {
    const r = Fields.of(file.json, file.path);
    const id = r.has('id') ? r.str('id') : path.basename(file.path);
    if (!raceLevelOk(ctx.task, `${file.path}/${id}`)) return [];
    const questions = r.strings('questions');
    const options = r.array('options');
    const answers = r.strings('answers');
    if (options.length !== questions.length || answers.length !== questions.length) {
      throw new EvalDataError(`${file.path}: questions, options and answers differ in length`);
    }
    return questions.map((q, k) => {
      const opts = options[k];
      if (!Array.isArray(opts) || opts.some((o) => typeof o !== 'string')) {
        throw new EvalDataError(`${file.path}: options[${k}] must be an array of strings`);
      }
      return raceQuestion(
        `${id}/${k}`,
        r.str('article'),
        q,
        opts as string[],
        answers[k]!,
        `${file.path}: question ${k}`,
      );
    });
  },
};

/** The common export: one question per line {example_id, article, question, options, answer}. */
export const raceJsonl: Format = {
  id: 'race-jsonl',
  description: 'RACE JSONL export {example_id, article, question, options, answer}',
  detect: (f) => hasKeys(f, 'article', 'question', 'options', 'answer'),
  load: (file, ctx) =>
    mapRecords<Example>(file, (r, i) => {
      const id = r.has('example_id') ? r.text('example_id') : String(i);
      if (!raceLevelOk(ctx.task, `${file.path}/${id}`)) return undefined;
      return raceQuestion(
        `${id}/${i}`,
        r.str('article'),
        r.str('question'),
        r.strings('options'),
        r.str('answer'),
        r.where,
      );
    }),
};

/** ANLI: the release's labels e/n/c, or the export's 0/1/2 (entailment, neutral, contradiction). */
export const anli: Format = {
  id: 'anli-jsonl',
  description: 'ANLI JSONL {uid, premise, hypothesis, label: e|n|c or 0|1|2}',
  detect: (f) => hasKeys(f, 'premise', 'hypothesis', 'label') && hasKeys(f, 'uid'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const v = r.rec.label;
      const gold = typeof v === 'string' ? ['e', 'n', 'c'].indexOf(v) : typeof v === 'number' ? v : -1;
      if (!(gold >= 0 && gold <= 2)) {
        throw new EvalDataError(
          `${r.where}: field 'label' must be e, n or c (or 0, 1, 2); got ${JSON.stringify(v)}`,
        );
      }
      return {
        type: 'choice',
        id: r.has('uid') ? r.text('uid') : String(i),
        context: `${r.str('premise')}\nQuestion: ${r.str('hypothesis')} True, False, or Neither?\nAnswer:`,
        continuations: [' True', ' Neither', ' False'],
        gold,
      };
    }),
};
