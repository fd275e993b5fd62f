/**
 * GLaM's 29 evaluation tasks (Du et al. 2021, Table 5; the GPT-3 set): how each is
 * scored, its few-shot K (GPT-3's, which GLaM follows), and the data formats it accepts.
 */
import * as choice from './formats/choice.js';
import type { Format } from './formats/format.js';
import * as generic from './formats/generic.js';
import * as qa from './formats/qa.js';
import * as sg from './formats/superglue.js';

/** The number reported as a task's score (0-100). */
export type MainMetric = 'acc' | 'em' | 'f1' | 'f1a';

export interface TaskSpec {
  id: string;
  name: string;
  group: 'NLG' | 'NLU';
  /** Formats accepted, in order of preference when a directory holds several. */
  formats: Format[];
  /** The paper's few-shot K (GPT-3's, Appendix; GLaM uses the same settings). */
  fewShot: number;
  metric: MainMetric;
  /** GLaM ranks candidates by log-likelihood per token except for COPA and ReCoRD (unnormalised). */
  unnormalised?: boolean;
  /** Generic multiple-choice queries get lm-eval's "\nAnswer:" cue. */
  answerCue?: boolean;
  /** Names of a task's folder under a `--data` directory, besides its id. */
  dirs: string[];
}

const task = (t: TaskSpec) => t;

export const TASKS: TaskSpec[] = [
  // NLG
  task({
    id: 'triviaqa',
    name: 'TriviaQA',
    group: 'NLG',
    formats: [qa.triviaqaJson, qa.triviaqaJsonl, generic.genericQuestionAnswering],
    fewShot: 64,
    metric: 'em',
    dirs: ['trivia_qa', 'TriviaQA'],
  }),
  task({
    id: 'nq',
    name: 'Natural Questions (open)',
    group: 'NLG',
    formats: [qa.nqOpen, generic.genericQuestionAnswering],
    fewShot: 64,
    metric: 'em',
    dirs: ['naturalquestions', 'nq_open', 'nq-open', 'NQ-open'],
  }),
  task({
    id: 'webqs',
    name: 'WebQuestions',
    group: 'NLG',
    formats: [qa.webqs, generic.genericQuestionAnswering],
    fewShot: 64,
    metric: 'em',
    dirs: ['webquestions', 'web_questions'],
  }),
  task({
    id: 'squadv2',
    name: 'SQuAD v2',
    group: 'NLG',
    formats: [qa.squadv2],
    fewShot: 16,
    metric: 'f1',
    dirs: ['squad_v2', 'squad2', 'squad'],
  }),
  task({
    id: 'lambada',
    name: 'LAMBADA',
    group: 'NLG',
    formats: [generic.genericLanguageModelling, qa.lambadaJsonl, qa.lambadaText],
    fewShot: 15,
    metric: 'acc',
    dirs: ['lambada_openai'],
  }),
  task({ id: 'drop', name: 'DROP', group: 'NLG', formats: [qa.drop], fewShot: 20, metric: 'f1', dirs: [] }),
  task({ id: 'quac', name: 'QuAC', group: 'NLG', formats: [qa.quac], fewShot: 5, metric: 'f1', dirs: [] }),
  task({ id: 'coqa', name: 'CoQA', group: 'NLG', formats: [qa.coqa], fewShot: 5, metric: 'f1', dirs: [] }),
  // NLU
  task({
    id: 'hellaswag',
    name: 'HellaSwag',
    group: 'NLU',
    formats: [choice.hellaswagJsonl, choice.hellaswagText6, generic.genericMultipleChoice],
    fewShot: 20,
    metric: 'acc',
    dirs: [],
  }),
  task({
    id: 'storycloze',
    name: 'StoryCloze',
    group: 'NLU',
    formats: [choice.storyCloze, generic.genericMultipleChoice],
    fewShot: 70,
    metric: 'acc',
    dirs: ['story_cloze'],
  }),
  task({
    id: 'winograd',
    name: 'Winograd (WSC273)',
    group: 'NLU',
    formats: [choice.winogradJsonl, choice.winogradXml, generic.genericSchema],
    fewShot: 7,
    metric: 'acc',
    dirs: ['wsc273', 'winograd_wsc'],
  }),
  task({
    id: 'winogrande',
    name: 'WinoGrande',
    group: 'NLU',
    formats: [choice.winogrande, generic.genericSchema],
    fewShot: 50,
    metric: 'acc',
    dirs: [],
  }),
  task({
    id: 'race_m',
    name: 'RACE-m',
    group: 'NLU',
    formats: [choice.raceArticle, choice.raceJsonl, generic.genericMultipleChoice],
    fewShot: 10,
    metric: 'acc',
    dirs: ['race-m', 'race/middle', 'RACE/dev/middle', 'middle'],
  }),
  task({
    id: 'race_h',
    name: 'RACE-h',
    group: 'NLU',
    formats: [choice.raceArticle, choice.raceJsonl, generic.genericMultipleChoice],
    fewShot: 10,
    metric: 'acc',
    dirs: ['race-h', 'race/high', 'RACE/dev/high', 'high'],
  }),
  task({
    id: 'piqa',
    name: 'PIQA',
    group: 'NLU',
    formats: [choice.piqa, generic.genericMultipleChoice],
    fewShot: 50,
    metric: 'acc',
    answerCue: true,
    dirs: [],
  }),
  task({
    id: 'arc_e',
    name: 'ARC (Easy)',
    group: 'NLU',
    formats: [choice.arc, generic.genericMultipleChoice],
    fewShot: 50,
    metric: 'acc',
    answerCue: true,
    dirs: ['arc-e', 'ARC-Easy', 'arc_easy'],
  }),
  task({
    id: 'arc_c',
    name: 'ARC (Challenge)',
    group: 'NLU',
    formats: [choice.arc, generic.genericMultipleChoice],
    fewShot: 50,
    metric: 'acc',
    answerCue: true,
    dirs: ['arc-c', 'ARC-Challenge', 'arc_challenge'],
  }),
  task({
    id: 'openbookqa',
    name: 'OpenBookQA',
    group: 'NLU',
    formats: [choice.openbookqa, generic.genericMultipleChoice],
    fewShot: 100,
    metric: 'acc',
    dirs: ['obqa', 'OpenBookQA'],
  }),
  task({
    id: 'boolq',
    name: 'BoolQ',
    group: 'NLU',
    formats: [sg.boolq, generic.genericMultipleChoice],
    fewShot: 32,
    metric: 'acc',
    answerCue: true,
    dirs: ['BoolQ'],
  }),
  task({
    id: 'copa',
    name: 'COPA',
    group: 'NLU',
    formats: [sg.copa, generic.genericMultipleChoice],
    fewShot: 32,
    metric: 'acc',
    unnormalised: true,
    dirs: ['COPA'],
  }),
  task({
    id: 'rte',
    name: 'RTE',
    group: 'NLU',
    formats: [sg.rte, generic.genericMultipleChoice],
    fewShot: 32,
    metric: 'acc',
    dirs: ['RTE'],
  }),
  task({
    id: 'wic',
    name: 'WiC',
    group: 'NLU',
    formats: [sg.wic, generic.genericMultipleChoice],
    fewShot: 32,
    metric: 'acc',
    dirs: ['WiC'],
  }),
  task({
    id: 'multirc',
    name: 'MultiRC',
    group: 'NLU',
    formats: [sg.multirc],
    fewShot: 32,
    metric: 'f1a',
    dirs: ['MultiRC'],
  }),
  task({
    id: 'wsc',
    name: 'WSC (SuperGLUE)',
    group: 'NLU',
    formats: [sg.wsc, generic.genericMultipleChoice],
    fewShot: 32,
    metric: 'acc',
    dirs: ['WSC'],
  }),
  task({
    id: 'record',
    name: 'ReCoRD',
    group: 'NLU',
    formats: [sg.record],
    fewShot: 32,
    metric: 'em',
    unnormalised: true,
    dirs: ['ReCoRD'],
  }),
  task({
    id: 'cb',
    name: 'CB',
    group: 'NLU',
    formats: [sg.cb, generic.genericMultipleChoice],
    fewShot: 32,
    metric: 'acc',
    dirs: ['CB'],
  }),
  // The three ANLI rounds differ only in their data.
  ...[1, 2, 3].map((r) =>
    task({
      id: `anli_r${r}`,
      name: `ANLI R${r}`,
      group: 'NLU',
      formats: [choice.anli, generic.genericMultipleChoice],
      fewShot: 50,
      metric: 'acc',
      dirs: [`R${r}`, `anli/R${r}`],
    }),
  ),
];

const BY_ID = new Map(TASKS.map((t) => [t.id, t]));

export function getTask(id: string): TaskSpec {
  const t = BY_ID.get(id);
  if (t === undefined) {
    throw new Error(`unknown task '${id}'; the tasks are: ${TASKS.map((x) => x.id).join(', ')}`);
  }
  return t;
}

/** `--tasks` value: comma-separated ids, or "all", "nlg", "nlu". */
export function parseTaskList(spec: string): TaskSpec[] {
  const out: TaskSpec[] = [];
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const group = part.toLowerCase();
    const add =
      group === 'all'
        ? TASKS
        : group === 'nlg' || group === 'nlu'
          ? TASKS.filter((t) => t.group.toLowerCase() === group)
          : [getTask(part)];
    for (const t of add) if (!out.includes(t)) out.push(t);
  }
  if (out.length === 0) throw new Error('--tasks names no task');
  return out;
}

/** The metrics reported for a task (the first is the score). */
export function taskMetrics(t: TaskSpec): string[] {
  if (t.id === 'lambada') return ['acc', 'ppl'];
  if (t.id === 'drop' || t.metric === 'f1') return ['f1', 'em'];
  if (t.group === 'NLG' || t.id === 'record') return ['em', 'f1'];
  const lmEval = ['lmeval_acc', 'lmeval_acc_norm'];
  if (t.id === 'multirc') return ['f1a', 'em', 'acc', ...lmEval];
  if (t.id === 'cb') return ['acc', 'f1', ...lmEval];
  return ['acc', ...lmEval];
}
