/**
 * Beam search bookkeeping, independent of the model (GLaM decodes its generation tasks with beam 4).
 *
 * Each step every live beam offers its best next tokens; all (beam, token) extensions are ranked by
 * cumulative log-probability (ties: earlier beam, then lower token id) and walked in order: an
 * extension that ends the hypothesis (a stop token, or a stop string in its text) is set aside as
 * finished, the others become the next live beams until `width` are taken. Finished extensions ranked
 * below the `width`-th live one are discarded, as in the usual formulation.
 *
 * Hypotheses are compared by score = logprob / length^lengthPenalty (length = generated tokens, stop
 * token excluded; lengthPenalty 0, the default, ranks by the plain sum). The search ends when `width`
 * hypotheses are finished and no live beam can still beat the worst of them (its logprob only falls;
 * the bound takes the most favourable length still possible), or at maxTokens, when the live beams
 * finish by length.
 */
import type { TokenLogprob } from './sample.js';

export interface BeamHypothesis {
  tokens: number[];
  logprob: number;
  score: number;
  finishReason: 'stop' | 'length';
}

export interface LiveBeam {
  tokens: number[];
  logprob: number;
}

/** How an extension ends a hypothesis: not at all, by a stop token (dropped) or a stop string (kept). */
export type Ending = 'none' | 'stop-token' | 'stop-string';

export class BeamSearch {
  live: LiveBeam[] = [{ tokens: [], logprob: 0 }];
  readonly finished: BeamHypothesis[] = [];
  done = false;

  constructor(
    readonly width: number,
    readonly maxTokens: number,
    readonly lengthPenalty = 0,
  ) {
    if (!(Number.isInteger(width) && width >= 1))
      throw new Error(`beam width must be an integer >= 1, got ${width}`);
    if (!(Number.isInteger(maxTokens) && maxTokens >= 1)) {
      throw new Error(`beam search needs max tokens >= 1, got ${maxTokens}`);
    }
    if (!Number.isFinite(lengthPenalty))
      throw new Error(`length penalty must be a finite number, got ${lengthPenalty}`);
  }

  /** Candidates each live beam should offer per step: enough that `width` survive any stops. */
  get candidatesPerBeam(): number {
    return 2 * this.width;
  }

  score(logprob: number, length: number): number {
    return this.lengthPenalty === 0 ? logprob : logprob / Math.max(1, length) ** this.lengthPenalty;
  }

  /**
   * One step. `offers[b]` are live beam b's candidate next tokens with their log-probabilities;
   * `ending(b, token)` says whether that extension finishes. Returns, for each new live beam, the index
   * of the beam it extends and its token (in rank order).
   */
  advance(
    offers: readonly TokenLogprob[][],
    ending: (beam: number, token: number) => Ending,
  ): [number, number][] {
    if (this.done) throw new Error('beam search: advance after the search ended');
    if (offers.length !== this.live.length) {
      throw new Error(`beam search: ${offers.length} offers for ${this.live.length} live beams`);
    }
    const ext: { beam: number; token: number; logprob: number }[] = [];
    offers.forEach((list, b) => {
      for (const c of list) ext.push({ beam: b, token: c.token, logprob: this.live[b]!.logprob + c.logprob });
    });
    ext.sort((x, y) => y.logprob - x.logprob || x.beam - y.beam || x.token - y.token);
    const next: LiveBeam[] = [];
    const parents: [number, number][] = [];
    for (const e of ext) {
      if (next.length === this.width) break;
      const parent = this.live[e.beam]!;
      const end = ending(e.beam, e.token);
      if (end === 'none') {
        next.push({ tokens: [...parent.tokens, e.token], logprob: e.logprob });
        parents.push([e.beam, e.token]);
      } else {
        const tokens = end === 'stop-token' ? [...parent.tokens] : [...parent.tokens, e.token];
        this.finished.push({
          tokens,
          logprob: e.logprob,
          score: this.score(e.logprob, tokens.length),
          finishReason: 'stop',
        });
      }
    }
    this.live = next;
    const length = next[0]?.tokens.length ?? 0;
    if (next.length === 0) {
      this.done = true;
    } else if (length >= this.maxTokens) {
      for (const b of next) {
        this.finished.push({
          tokens: b.tokens,
          logprob: b.logprob,
          score: this.score(b.logprob, length),
          finishReason: 'length',
        });
      }
      this.live = [];
      this.done = true;
    } else if (this.finished.length >= this.width) {
      const kept = this.best(this.width);
      const worst = kept[kept.length - 1]!.score;
      const bestLive = Math.max(
        ...next.map((b) => Math.max(this.score(b.logprob, length), this.score(b.logprob, this.maxTokens))),
      );
      if (bestLive <= worst) {
        this.live = [];
        this.done = true;
      }
    }
    return parents;
  }

  /** The n best finished hypotheses (by score, earlier first on ties). */
  best(n: number): BeamHypothesis[] {
    return this.finished
      .map((h, i) => ({ h, i }))
      .sort((a, b) => b.h.score - a.h.score || a.i - b.i)
      .slice(0, n)
      .map((x) => x.h);
  }
}
