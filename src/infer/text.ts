/**
 * Text of a generation as its tokens arrive: decoded incrementally, released only once it is stable,
 * and cut at the first stop string (which is removed from the output, as OpenAI does).
 *
 * Text is held back while it could still change or turn out to be a stop string: a trailing partial
 * UTF-8 character (byte-fallback tokens split characters; the decoder shows U+FFFD for the incomplete
 * tail) and the longest suffix that is a prefix of some stop string. So streamed deltas concatenate to
 * exactly the final text, and no streamed text is ever taken back.
 */

/** What generation needs of a tokenizer. */
export interface TextCodec {
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
}

const REPLACEMENT = '\uFFFD';

export class TextTracker {
  private readonly ids: number[] = [];
  private emitted = 0;
  private text = '';
  /** Set once a stop string is found: the final text. */
  stoppedText: string | undefined;

  constructor(
    private readonly codec: TextCodec,
    private readonly stops: readonly string[] = [],
  ) {}

  /** Adds a token; returns the newly stable text and whether a stop string ended the generation. */
  push(id: number): { delta: string; stopped: boolean } {
    if (this.stoppedText !== undefined) return { delta: '', stopped: true };
    this.ids.push(id);
    this.text = this.codec.decode(this.ids);
    if (this.stops.length > 0) {
      let cut = -1;
      for (const s of this.stops) {
        // A stop cannot start inside text already released (that text was held back while it could).
        const at = this.text.indexOf(s, Math.max(0, this.emitted));
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        this.stoppedText = this.text.slice(0, cut);
        return { delta: this.release(this.stoppedText.length), stopped: true };
      }
    }
    let stable = this.text.length;
    while (stable > this.emitted && this.text[stable - 1] === REPLACEMENT) stable--;
    stable -= this.stopPrefixHeld(stable);
    return { delta: this.release(stable), stopped: false };
  }

  /** Everything not yet released (at the end of the generation). */
  flush(): string {
    const final = this.stoppedText ?? this.text;
    return this.release(final.length, final);
  }

  /** The text so far (final once stopped or flushed). */
  get current(): string {
    return this.stoppedText ?? this.text;
  }

  private release(upTo: number, from = this.stoppedText ?? this.text): string {
    if (upTo <= this.emitted) return '';
    const d = from.slice(this.emitted, upTo);
    this.emitted = upTo;
    return d;
  }

  /** Length of the longest suffix of text[0, end) that is a proper prefix of a stop string. */
  private stopPrefixHeld(end: number): number {
    let held = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, end - this.emitted); n > held; n--) {
        if (this.text.startsWith(s.slice(0, n), end - n)) {
          held = n;
          break;
        }
      }
    }
    return held;
  }
}
