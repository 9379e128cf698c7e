/**
 * The progress display of a training run: one bar per epoch redrawn in place on a terminal
 * (`epoch 2/4 [#######.....] 45/78 loss 0.412 acc 85.1% 212 img/s ETA 0:16`), or a plain line
 * every tenth of an epoch when the output is a file or a CI log.
 *
 * @module
 */

/** What the bar shows after each step. */
export interface StepStats {
  /** 1-based epoch. */
  epoch: number;
  /** Epochs in the run. */
  epochs: number;
  /** Steps done in this epoch. */
  step: number;
  /** Steps in this epoch. */
  steps: number;
  /** Mean training loss so far this epoch. */
  loss: number;
  /** Training accuracy so far this epoch, in [0, 1]. */
  accuracy: number;
  /** Training throughput. */
  imagesPerSecond: number;
  /** Estimated seconds left in this epoch. */
  etaSeconds: number;
}

/** Formats seconds as m:ss or h:mm:ss. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(r).padStart(2, "0")}`;
}

/** Writes progress to stdout. */
export class ProgressBar {
  #interactive: boolean;
  #lastPlain = -1;
  #encoder = new TextEncoder();

  /** `plain` forces line-by-line output; otherwise a terminal gets a bar redrawn in place. */
  constructor(plain = false) {
    this.#interactive = !plain && Deno.stdout.isTerminal();
  }

  /** Shows the state after a step. */
  update(s: StepStats): void {
    const width = 24;
    const filled = Math.round((width * s.step) / Math.max(1, s.steps));
    const text =
      `epoch ${s.epoch}/${s.epochs} [${"#".repeat(filled)}${".".repeat(width - filled)}] ` +
      `${s.step}/${s.steps} loss ${s.loss.toFixed(4)} acc ${(100 * s.accuracy).toFixed(1)}% ` +
      `${s.imagesPerSecond.toFixed(0)} img/s ETA ${formatDuration(s.etaSeconds)}`;
    if (this.#interactive) {
      Deno.stdout.writeSync(this.#encoder.encode(`\r\x1b[2K${text}`));
      return;
    }
    const tenth = Math.floor((10 * s.step) / Math.max(1, s.steps));
    if (tenth !== this.#lastPlain || s.step === s.steps) {
      this.#lastPlain = tenth;
      console.log(text);
    }
  }

  /** Ends the current bar and prints a line. */
  line(text: string): void {
    if (this.#interactive) Deno.stdout.writeSync(this.#encoder.encode("\r\x1b[2K"));
    this.#lastPlain = -1;
    console.log(text);
  }
}
