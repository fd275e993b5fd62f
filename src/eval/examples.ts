/**
 * What loaders produce: evaluation examples already in prompt form, one shape per
 * way of scoring. Loaders own the task's prompt wording (as lm-evaluation-harness
 * words it, see tasks.ts); the harness owns few-shot assembly and scoring.
 */

/**
 * Rank classification: the candidate whose continuation is most likely given its
 * context wins. Multiple choice shares one context; schema tasks (WinoGrande,
 * Winograd) give each candidate its own context and score the same continuation.
 */
export interface ChoiceExample {
  type: 'choice';
  id: string;
  /** One shared context, or one per candidate. */
  context: string | string[];
  /** Each candidate's continuation, as scored (with its leading delimiter). */
  continuations: string[];
  gold: number;
  /** MultiRC: answer options of one question form a group (for F1a and exact match). */
  group?: string;
  /** ReCoRD: each candidate's entity, and the gold answers, for max-over-answers EM/F1. */
  entities?: string[];
  answers?: string[];
}

/** Language modelling (LAMBADA): the continuation's log-likelihood and whether greedy decoding gives it. */
export interface LmExample {
  type: 'lm';
  id: string;
  context: string;
  /** With its leading delimiter. */
  continuation: string;
}

/** A DROP gold answer: a number, a date or one or more spans, as strings. */
export interface DropAnswer {
  spans: string[];
}

/** Generation (NLG): the model's greedy or beam-searched answer is compared with the golds. */
export interface GenExample {
  type: 'gen';
  id: string;
  context: string;
  /** Acceptable answers; [] for a SQuAD v2 / QuAC question without one. */
  answers: string[];
  /** CoQA, QuAC: the dialogue; its other turns are never its demonstrations. */
  group?: string;
  /** DROP: gold answers as span lists (the first is the one used in demonstrations). */
  drop?: DropAnswer[];
}

export type Example = ChoiceExample | LmExample | GenExample;

/** The text a demonstration adds to a few-shot prompt: the example with its gold answer. */
export function demonstration(ex: Example): string {
  switch (ex.type) {
    case 'choice': {
      const ctx = typeof ex.context === 'string' ? ex.context : ex.context[ex.gold]!;
      return ctx + ex.continuations[ex.gold]!;
    }
    case 'lm':
      return ex.context + ex.continuation;
    case 'gen': {
      const answer = ex.drop !== undefined ? ex.drop[0]!.spans.join(', ') : ex.answers[0];
      return `${ex.context} ${answer === undefined || answer === '' ? NO_ANSWER : answer}`;
    }
  }
}

/** What a demonstration answers to a question that has no answer (SQuAD v2, QuAC), and what predicts one. */
export const NO_ANSWER = 'unanswerable';
