/**
 * Answer comparison for the generation tasks: SQuAD's normalisation, exact match and
 * token F1 (max over gold answers), and DROP's number-aware, multi-span F1.
 */

/** ASCII punctuation, as Python's string.punctuation (what SQuAD's script strips). */
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

function stripPunct(s: string): string {
  let out = '';
  for (const c of s) if (!PUNCT.has(c)) out += c;
  return out;
}

const collapse = (s: string) =>
  s
    .split(/\s+/)
    .filter((w) => w !== '')
    .join(' ');

/** SQuAD normalisation: lower case, no punctuation, no articles, single spaces. */
export function normalizeAnswer(s: string): string {
  return collapse(stripPunct(s.toLowerCase()).replace(/\b(a|an|the)\b/g, ' '));
}

export function exactMatch(prediction: string, gold: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(gold) ? 1 : 0;
}

/** Token-overlap F1 after normalisation; two empty answers match (SQuAD v2's no-answer case). */
export function tokenF1(prediction: string, gold: string): number {
  const p = normalizeAnswer(prediction)
    .split(' ')
    .filter((w) => w !== '');
  const g = normalizeAnswer(gold)
    .split(' ')
    .filter((w) => w !== '');
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const w of g) counts.set(w, (counts.get(w) ?? 0) + 1);
  let same = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      same++;
      counts.set(w, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** max over golds of metric(prediction, gold); golds [] means "no answer": only an empty prediction scores. */
export function maxOverGolds(
  metric: (p: string, g: string) => number,
  prediction: string,
  golds: string[],
): number {
  const gs = golds.length === 0 ? [''] : golds;
  let best = 0;
  for (const g of gs) best = Math.max(best, metric(prediction, g));
  return best;
}

// ---- DROP ----

const isNumber = (s: string) => s.trim() !== '' && Number.isFinite(Number(s));

/** DROP's per-token normalisation, in its order: lower case, punctuation (unless a number), numbers as floats, articles. */
function dropToken(tok: string): string {
  let t = tok.toLowerCase();
  if (!isNumber(t)) t = stripPunct(t);
  if (isNumber(t)) t = String(Number(t));
  return collapse(t.replace(/\b(a|an|the)\b/g, ' '));
}

/** A span normalised as DROP does: split on spaces and hyphens, each token normalised. */
export function dropNormalize(span: string): string {
  return span
    .split(/[ -]/)
    .map(dropToken)
    .filter((t) => t !== '')
    .join(' ')
    .trim();
}

function bagF1(pred: Set<string>, gold: Set<string>): number {
  let inter = 0;
  for (const t of pred) if (gold.has(t)) inter++;
  const precision = pred.size === 0 ? 1 : inter / pred.size;
  const recall = gold.size === 0 ? 1 : inter / gold.size;
  return precision === 0 && recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
}

/** A gold bag whose numbers none appear in the predicted bag scores 0 against it. */
function numbersAgree(gold: Set<string>, pred: Set<string>): boolean {
  const goldNums = [...gold].filter(isNumber);
  if (goldNums.length === 0) return true;
  return goldNums.some((n) => pred.has(n));
}

/**
 * Maximum-weight one-to-one assignment of rows to columns (Hungarian algorithm on
 * the negated square-padded matrix). Returns the column of each row, -1 if none.
 */
export function maxAssignment(w: number[][]): number[] {
  const rows = w.length;
  const cols = rows === 0 ? 0 : w[0]!.length;
  const n = Math.max(rows, cols);
  const cost = (i: number, j: number) => (i < rows && j < cols ? -w[i]![j]! : 0);
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1); // p[j]: row matched to column j (1-based), 0 = none
  const way = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(n + 1).fill(Number.POSITIVE_INFINITY);
    const used = new Uint8Array(n + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0]!;
      let delta = Number.POSITIVE_INFINITY;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = cost(i0 - 1, j - 1) - u[i0]! - v[j]!;
        if (cur < minv[j]!) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]!] += delta;
          v[j] -= delta;
        } else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0 !== 0);
  }
  const colOf = new Array<number>(rows).fill(-1);
  for (let j = 1; j <= n; j++) {
    const i = p[j]! - 1;
    if (i >= 0 && i < rows && j - 1 < cols) colOf[i] = j - 1;
  }
  return colOf;
}

/**
 * DROP's exact match and F1 of a predicted answer (spans) against one gold answer
 * (spans): EM when the normalised span sets are equal; F1 the mean over the larger
 * side of the best one-to-one alignment of span token bags (number-aware).
 */
export function dropScores(predicted: string[], gold: string[]): { em: number; f1: number } {
  const pn = predicted.map(dropNormalize);
  const gn = gold.map(dropNormalize);
  const em =
    pn.length === gn.length && new Set(pn).size === new Set(gn).size && pn.every((s) => gn.includes(s))
      ? 1
      : 0;
  const pBags = pn.map((s) => new Set(s.split(' ').filter((t) => t !== '')));
  const gBags = gn.map((s) => new Set(s.split(' ').filter((t) => t !== '')));
  const scores = pBags.map((p) => gBags.map((g) => (numbersAgree(g, p) ? bagF1(p, g) : 0)));
  const assignment = maxAssignment(scores);
  const n = Math.max(pBags.length, gBags.length);
  let sum = 0;
  assignment.forEach((j, i) => {
    if (j >= 0) sum += scores[i]![j]!;
  });
  const f1 = n === 0 ? 0 : sum / n;
  return { em, f1: Math.round(f1 * 100) / 100 };
}

/** DROP scores of a prediction: max over gold answers (a prediction is one span). */
export function dropMax(prediction: string, golds: { spans: string[] }[]): { em: number; f1: number } {
  let em = 0;
  let f1 = 0;
  for (const g of golds) {
    const s = dropScores([prediction], g.spans);
    em = Math.max(em, s.em);
    f1 = Math.max(f1, s.f1);
  }
  return { em, f1 };
}
