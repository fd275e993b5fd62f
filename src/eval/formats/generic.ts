/**
 * The four generic in-context-learning layouts of common eval suites (JSON Lines):
 * multiple choice {query, choices, gold}, schema {context_options, continuation,
 * gold}, language modelling {context, continuation}, question answering
 * {context, answer, aliases}. The prompt is the file's own; only the delimiter
 * between prompt and answer is added (a space, unless the text already has one).
 */
import type { Example } from '../examples.js';
import { checkGold, type Format, hasKeys, mapRecords } from './format.js';

/** Join prompt and answer with one space unless one side already has whitespace there. */
export function delimit(answer: string, prompt: string): string {
  return /\s$/.test(prompt) || /^\s/.test(answer) ? answer : ` ${answer}`;
}

/** A query that asks a question gets lm-evaluation-harness's "\nAnswer:" cue when it lacks one. */
function withCue(query: string, cue: boolean | undefined): string {
  if (!cue || /Answer:\s*$/.test(query)) return query;
  return `${query.trimEnd()}\nAnswer:`;
}

export const genericMultipleChoice: Format = {
  id: 'generic-mc',
  description: 'generic multiple choice JSONL {query, choices, gold}',
  detect: (f) => hasKeys(f, 'query', 'choices', 'gold'),
  load: (file, ctx) =>
    mapRecords<Example>(file, (r, i) => {
      const context = withCue(r.str('query'), ctx.answerCue);
      const choices = r.strings('choices');
      return {
        type: 'choice',
        id: String(i),
        context,
        continuations: choices.map((c) => delimit(c, context)),
        gold: checkGold(r.int('gold'), choices.length, r.where),
      };
    }),
};

export const genericSchema: Format = {
  id: 'generic-schema',
  description: 'generic schema JSONL {context_options, continuation, gold}',
  detect: (f) => hasKeys(f, 'context_options', 'continuation', 'gold'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const contexts = r.strings('context_options');
      const cont = r.str('continuation');
      return {
        type: 'choice',
        id: String(i),
        context: contexts,
        continuations: contexts.map((c) => delimit(cont, c)),
        gold: checkGold(r.int('gold'), contexts.length, r.where),
      };
    }),
};

export const genericLanguageModelling: Format = {
  id: 'generic-lm',
  description: 'generic language modelling JSONL {context, continuation}',
  detect: (f) => hasKeys(f, 'context', 'continuation') && !hasKeys(f, 'context_options'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const context = r.str('context');
      return { type: 'lm', id: String(i), context, continuation: delimit(r.str('continuation'), context) };
    }),
};

export const genericQuestionAnswering: Format = {
  id: 'generic-qa',
  description: 'generic question answering JSONL {context, answer, aliases}',
  detect: (f) => hasKeys(f, 'context', 'answer') && !hasKeys(f, 'continuation'),
  load: (file) =>
    mapRecords<Example>(file, (r, i) => {
      const answer = r.str('answer');
      const aliases = r.has('aliases') ? r.strings('aliases') : [];
      return {
        type: 'gen',
        id: String(i),
        context: r.str('context').trimEnd(),
        answers: [answer, ...aliases.filter((a) => a !== answer)],
      };
    }),
};
