/**
 * Greedy decoding and beam search over a "next-token log-probabilities" step
 * function, with stop strings checked on the decoded text. Scorers without a
 * decoder of their own (full recompute) generate through these.
 */
import { type Codec, cutAtStop, type GenerateRequest } from './scorer.js';

/** Log-softmax of the next token after each sequence (one row of vocab_size each). */
export type NextLogprobs = (seqs: number[][]) => Float64Array[];

interface Hypothesis {
  ids: number[];
  score: number;
}

/** The k best (value, index) of a row, best first; ties go to the lower index. */
export function topK(row: Float64Array, k: number): Array<{ id: number; lp: number }> {
  const best: Array<{ id: number; lp: number }> = [];
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (best.length === k && v <= best[k - 1]!.lp) continue;
    let j = best.length < k ? best.length : k - 1;
    while (j > 0 && best[j - 1]!.lp < v) j--;
    best.splice(j, 0, { id: i, lp: v });
    if (best.length > k) best.pop();
  }
  return best;
}

/**
 * Generate for each request: greedy (beam 1) or beam search (the finished
 * hypothesis of highest total log-probability; a hypothesis finishes at a stop
 * string, the stop token, or maxTokens). Requests advance together, one model call per step.
 */
export function searchAll(
  requests: GenerateRequest[],
  prompts: number[][],
  codec: Codec,
  stopToken: number,
  next: NextLogprobs,
): string[] {
  const results = new Array<string | undefined>(requests.length).fill(undefined);
  const alive: Hypothesis[][] = requests.map(() => [{ ids: [], score: 0 }]);
  const finished: Array<Array<{ text: string; score: number }>> = requests.map(() => []);
  const maxSteps = Math.max(0, ...requests.map((r) => r.maxTokens));
  for (let step = 0; step <= maxSteps; step++) {
    const open: number[] = [];
    for (let r = 0; r < requests.length; r++) {
      if (results[r] !== undefined) continue;
      const req = requests[r]!;
      const fin = finished[r]!;
      const bestAlive = alive[r]![0]?.score ?? Number.NEGATIVE_INFINITY;
      const bestFin = fin.reduce((m, f) => Math.max(m, f.score), Number.NEGATIVE_INFINITY);
      // Scores only fall as tokens are added: once a finished one beats every live one, it is the answer.
      if (step >= req.maxTokens || alive[r]!.length === 0 || fin.length >= req.beam || bestFin >= bestAlive) {
        for (const h of step >= req.maxTokens ? alive[r]! : [])
          fin.push({ text: codec.decode(h.ids), score: h.score });
        fin.sort((a, b) => b.score - a.score);
        results[r] = fin[0]?.text ?? '';
      } else open.push(r);
    }
    if (open.length === 0) break;
    const seqs: number[][] = [];
    for (const r of open) for (const h of alive[r]!) seqs.push([...prompts[r]!, ...h.ids]);
    const rows = next(seqs);
    let k = 0;
    for (const r of open) {
      const req = requests[r]!;
      const cands: Hypothesis[] = [];
      for (const h of alive[r]!) {
        for (const { id, lp } of topK(rows[k++]!, req.beam))
          cands.push({ ids: [...h.ids, id], score: h.score + lp });
      }
      cands.sort((a, b) => b.score - a.score);
      const keep: Hypothesis[] = [];
      for (const c of cands) {
        if (keep.length + finished[r]!.length >= req.beam) break;
        const last = c.ids[c.ids.length - 1]!;
        if (last === stopToken) {
          finished[r]!.push({ text: codec.decode(c.ids.slice(0, -1)), score: c.score });
          continue;
        }
        const cut = cutAtStop(codec.decode(c.ids), req.stop);
        if (cut !== undefined) finished[r]!.push({ text: cut, score: c.score });
        else keep.push(c);
      }
      alive[r] = keep;
    }
  }
  return results.map((t) => t ?? '');
}
