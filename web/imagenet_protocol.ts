/**
 * The messages between the ImageNet page (imagenet.ts) and its worker (imagenet_worker.ts).
 *
 * @module
 */

/** Page → worker. */
export type ToImagenetWorker =
  | { type: "start"; device: "auto" | "cpu" }
  | { type: "weights"; name: string; bytes: ArrayBuffer }
  | {
    type: "classify";
    id: number;
    name: string;
    /** RGB bytes, channels first: `[3, height, width]`. */
    rgb: Uint8Array;
    height: number;
    width: number;
    crops: 1 | 10;
  };

/** Worker → page. */
export type FromImagenetWorker =
  | { type: "ready"; device: "gpu" | "cpu"; description: string }
  | { type: "status"; text: string }
  | {
    type: "loaded";
    name: string;
    parameters: number;
    classes: number;
    /** conv1 (`features.0.weight`), `[64, 3, 11, 11]` for torchvision's. */
    filters: { shape: number[]; weights: Float32Array };
  }
  | {
    type: "prediction";
    id: number;
    name: string;
    top: { className: string; probability: number }[];
    seconds: number;
  }
  | { type: "error"; message: string; id?: number };
