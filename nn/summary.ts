/**
 * The table printed by `Module.summary(inputShape)`: one row per layer with its output
 * shape, parameter count and forward multiply-adds, then the totals.
 *
 * Multiply-adds (MACs) count the products of convolutions and fully connected layers only,
 * the convention behind the "0.72 GMAC per image" quoted for AlexNet: a convolution spends
 * `N * outChannels * outH * outW * (inChannels / groups) * kH * kW`, a linear layer
 * `N * in * out`. Bias additions, activations, LRN and pooling are not counted (they are
 * under 1% of AlexNet's arithmetic).
 *
 * @module
 */

import { checkArgument } from "../tensor/options.ts";

import { formatShape, type Shape } from "../tensor/shape.ts";

/** One line of the summary table. */
export interface SummaryRow {
  /** Dotted module name (`conv1`, `features.0`). */
  name: string;
  /** Layer type and configuration, e.g. `Conv2d(3->96, 11x11/4)`. */
  layer: string;
  /** Output shape for the summarized input. */
  outputShape: number[];
  /** Parameter elements owned by the layer. */
  parameters: number;
  /** Multiply-adds of one forward pass. */
  multiplyAdds: number;
}

/** Everything `summary()` computed, plus the rendered table. */
export interface SummaryReport {
  /** The input shape the summary was computed for. */
  inputShape: number[];
  /** One row per layer, in forward order. */
  rows: SummaryRow[];
  /** Shape of the model's output. */
  outputShape: number[];
  /** Sum of the rows' parameters. */
  totalParameters: number;
  /** Sum of the rows' multiply-adds. */
  totalMultiplyAdds: number;
  /** The table as printed. */
  text: string;
}

/** `60,965,224`: thousands separators, locale-independent. */
export function formatCount(n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** `0.72 G`, `9.57 M`: a count in decimal units, for the MAC total. */
export function formatScaled(n: number): string {
  if (n >= 1e8) return `${(n / 1e9).toFixed(2)} G`;
  if (n >= 1e5) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e2) return `${(n / 1e3).toFixed(2)} K`;
  return `${n} `;
}

/** Adds totals to `rows` and renders the table. */
export function buildSummary(inputShape: Shape, rows: SummaryRow[]): SummaryReport {
  checkArgument("buildSummary", "inputShape", inputShape, "array");
  checkArgument("buildSummary", "rows", rows, "array");
  const totalParameters = rows.reduce((s, r) => s + r.parameters, 0);
  const totalMultiplyAdds = rows.reduce((s, r) => s + r.multiplyAdds, 0);
  const outputShape = rows.length ? rows[rows.length - 1].outputShape : [...inputShape];
  const header = ["name", "layer", "output shape", "parameters", "multiply-adds"];
  const body = rows.map((r) => [
    r.name,
    r.layer,
    formatShape(r.outputShape),
    formatCount(r.parameters),
    formatCount(r.multiplyAdds),
  ]);
  const totals = [
    "total",
    `input ${formatShape(inputShape)}`,
    formatShape(outputShape),
    formatCount(totalParameters),
    `${formatCount(totalMultiplyAdds)} (${formatScaled(totalMultiplyAdds)}MAC)`,
  ];
  const table = [header, ...body, totals];
  const widths = header.map((_, c) => Math.max(...table.map((line) => line[c].length)));
  // Names, layers and shapes read left to right; numbers line up on their last digit.
  const render = (line: string[]) =>
    line.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ")
      .trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("  ");
  const text = [render(header), rule, ...body.map(render), rule, render(totals)].join("\n");
  return {
    inputShape: [...inputShape],
    rows,
    outputShape,
    totalParameters,
    totalMultiplyAdds,
    text,
  };
}
