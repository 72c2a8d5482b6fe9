/** What {@link StopMatcher.push} lets through. */
export interface StopMatch {
  /** Text safe to emit now (never contains a stop string, nor a prefix of one at its end). */
  text: string;
  /** A stop string was found: emit `text`, then finish with reason STOP. */
  stopped: boolean;
}

/**
 * Finds stop strings in streamed text. A stop string is never emitted, and
 * text that could still become one (a suffix equal to a stop string's prefix)
 * is held back until the next piece decides; the held text stays shorter than
 * the longest stop string, so this costs O(stops x longest stop) per piece.
 */
export class StopMatcher {
  readonly #stops: readonly string[];
  #held = "";

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  get active(): boolean {
    return this.#stops.length > 0;
  }

  push(piece: string): StopMatch {
    if (piece.length === 0) return { text: "", stopped: false };
    const text = this.#held + piece;
    let first = -1;
    for (const stop of this.#stops) {
      const at = text.indexOf(stop);
      if (at !== -1 && (first === -1 || at < first)) first = at;
    }
    if (first !== -1) {
      this.#held = "";
      return { text: text.slice(0, first), stopped: true };
    }
    const hold = this.#heldLength(text);
    this.#held = hold === 0 ? "" : text.slice(text.length - hold);
    return { text: hold === 0 ? text : text.slice(0, text.length - hold), stopped: false };
  }

  /** The text held back; emitted when generation ends without a stop. */
  flush(): string {
    const held = this.#held;
    this.#held = "";
    return held;
  }

  /** Length of the longest suffix of `text` that is a proper prefix of a stop string. */
  #heldLength(text: string): number {
    let best = 0;
    for (const stop of this.#stops) {
      for (let k = Math.min(stop.length - 1, text.length); k > best; k--) {
        if (text.endsWith(stop.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
