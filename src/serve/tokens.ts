/**
 * Text ↔ token ids as the server exposes them: special-token strings in text ("<eos>") become their ids,
 * as Hugging Face tokenizers (and so vLLM's /tokenize) do, so a client that asks for the id of the EOS
 * string gets it; and the display string of one token for logprobs ("bytes:\xe2" for a lone UTF-8
 * byte, as OpenAI writes them).
 */
import { BYTE_OFFSET, SPECIALS, type Tokenizer } from '../data/tokenizer.js';

const SPECIAL_STRINGS: readonly [string, number][] = [
  ['<pad>', SPECIALS.pad],
  ['<bos>', SPECIALS.bos],
  ['<eos>', SPECIALS.eos],
  ['<unk>', SPECIALS.unk],
];
const SPECIAL_PATTERN = /<pad>|<bos>|<eos>|<unk>/g;

export class ServerTokens {
  readonly eosToken = '<eos>';
  readonly padToken = '<pad>';
  readonly unkToken = '<unk>';
  private readonly strings = new Map<number, string>();

  constructor(readonly tokenizer: Tokenizer) {}

  get eosId(): number {
    return this.tokenizer.eosId;
  }

  /** Token ids of text, special-token strings included as their ids. */
  encode(text: string): number[] {
    const out: number[] = [];
    let last = 0;
    for (const m of text.matchAll(SPECIAL_PATTERN)) {
      if (m.index > last) out.push(...this.tokenizer.encode(text.slice(last, m.index)));
      out.push(SPECIAL_STRINGS.find(([s]) => s === m[0])![1]);
      last = m.index + m[0].length;
    }
    if (last < text.length) out.push(...this.tokenizer.encode(text.slice(last)));
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return this.tokenizer.decode(ids);
  }

  /** The display string of one token (its text; "bytes:\xNN" for a byte that is not text alone). */
  tokenString(id: number): string {
    let s = this.strings.get(id);
    if (s === undefined) {
      const special = SPECIAL_STRINGS.find(([, i]) => i === id);
      if (special !== undefined) s = special[0];
      else if (id >= BYTE_OFFSET && id < BYTE_OFFSET + 256) {
        const text = this.tokenizer.decode([id]);
        s = text.includes('\uFFFD') ? `bytes:\\x${(id - BYTE_OFFSET).toString(16).padStart(2, '0')}` : text;
      } else s = this.tokenizer.decode([id]);
      this.strings.set(id, s);
    }
    return s;
  }
}
