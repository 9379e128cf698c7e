/**
 * The training run's configuration: every flag of `deno task train-alexnet`, its default and
 * where that default comes from, and the parser that turns argv into a {@link TrainConfig}.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** Which network to train. */
export type Arch = "alexnet" | "alexnet-mini" | "alexnet-torchvision";

/** Everything that defines a training run (stored in each checkpoint, so a resume is exact). */
export interface TrainConfig {
  /** Network: the paper's, torchvision's variant, or the 28x28 mini model (default). */
  arch: Arch;
  /** IDX folder (Fashion-MNIST) or ImageFolder root; default: the full Fashion-MNIST if installed, else the built-in subset. */
  data: string | null;
  /** Epochs to train. */
  epochs: number;
  /** Images per step (paper: 128, section 5). */
  batchSize: number;
  /** Initial learning rate. */
  lr: number;
  /** Momentum (paper: 0.9). */
  momentum: number;
  /** Weight decay (paper: 0.0005). */
  weightDecay: number;
  /** Learning-rate schedule, called once per epoch. */
  schedule: "plateau" | "step" | "cosine" | "none";
  /** Update rule: the paper's or PyTorch's (see tensor/ops/sgd.ts). */
  sgdRule: "paper" | "pytorch";
  /** Weight initialisation: He (default for the mini model) or the paper's N(0, 0.01^2). */
  init: "he" | "paper";
  /** Seed of initialisation, data order, augmentation and dropout. */
  seed: number;
  /** Run folder: metrics, checkpoints, pictures. */
  out: string;
  /** 2: the paper's model parallelism (section 3.2) over two WebGPU devices. */
  devices: 1 | 2;
  /** "auto" picks the faster device; "cpu" or "gpu" force one. */
  device: "auto" | "cpu" | "gpu";
  /** Continue the run in `out` from its checkpoint. */
  resume: boolean;
  /** Ablation: ReLU (paper section 3.1) or tanh. */
  activation: "relu" | "tanh";
  /** Ablation: local response normalization on (section 3.3). */
  lrn: boolean;
  /** Ablation: dropout in the fully connected layers (section 4.2). */
  dropout: boolean;
  /** Ablation: overlapping 3x3/2 pooling (section 3.4) or plain 2x2/2. */
  pool: "overlap" | "plain";
  /** Ablation: the two-GPU channel groups (section 3.2), 2, or one group. */
  groups: 1 | 2;
  /** Ablation: PCA colour augmentation (section 4.1) for photo datasets. */
  pca: boolean;
  /** Data-loading workers (0: in-process). */
  workers: number;
  /** Download the full Fashion-MNIST (checked against its SHA-256) into the cache first. */
  download: boolean;
  /** Use only the first N training images (0: all); for quick experiments and tests. */
  trainLimit: number;
  /** Use only the first N test images (0: all). */
  testLimit: number;
  /** Stop after this many steps in all (0: no limit); for quick experiments and tests. */
  maxSteps: number;
  /** Minutes after which training stops, evaluates and saves (0: no limit). */
  timeLimit: number;
  /** Save a checkpoint every N steps as well as after every epoch. */
  checkpointEvery: number;
  /** Print the progress without colours or carriage returns (automatic when not a terminal). */
  plain: boolean;
}

/** Defaults for the mini model on Fashion-MNIST. */
export const DEFAULTS: TrainConfig = {
  arch: "alexnet-mini",
  data: null,
  epochs: 5,
  batchSize: 128, // paper section 5
  lr: 0.02,
  momentum: 0.9, // paper section 5
  weightDecay: 0.0005, // paper section 5
  schedule: "plateau", // paper section 5: divide by 10 when validation error stops improving
  sgdRule: "paper",
  init: "he",
  seed: 1,
  out: "runs/alexnet",
  device: "auto",
  devices: 1,
  resume: false,
  activation: "relu",
  lrn: true,
  dropout: true,
  pool: "overlap",
  groups: 2,
  pca: true,
  workers: 0,
  download: false,
  trainLimit: 0,
  testLimit: 0,
  maxSteps: 0,
  // The default run must finish within 10 minutes on a 2-core machine, evaluation included.
  timeLimit: 9,
  checkpointEvery: 100,
  plain: false,
};

/** The `--help` text. */
export const HELP = `Train AlexNet (Krizhevsky, Sutskever and Hinton, 2012) with tessera.

Usage: deno task train-alexnet [options]

With no options: trains the mini AlexNet on Fashion-MNIST (the full set when installed,
else the subset built into the repository) on the faster device, and writes metrics,
checkpoints and pictures to runs/alexnet.

Model and data
  --arch NAME           alexnet-mini (default) | alexnet | alexnet-torchvision
  --data PATH           IDX folder (Fashion-MNIST) or ImageFolder root (one folder per class)
  --download            fetch the full Fashion-MNIST into ~/.cache/tessera (SHA-256 checked)
  --train-limit N       use only the first N training images (default: all)
  --test-limit N        use only the first N test images (default: all)
  --workers N           data-loading workers (default ${DEFAULTS.workers})

Training (defaults: paper section 5 unless noted)
  --epochs N            epochs (default ${DEFAULTS.epochs})
  --batch-size N        images per step (default ${DEFAULTS.batchSize})
  --lr X                initial learning rate (default ${DEFAULTS.lr})
  --momentum X          momentum (default ${DEFAULTS.momentum})
  --weight-decay X      weight decay (default ${DEFAULTS.weightDecay})
  --schedule NAME       plateau (default: /10 when test error stops improving) | step | cosine | none
  --sgd-rule NAME       paper (default) | pytorch
  --init NAME           he (default) | paper (N(0, 0.01^2), biases 1 in conv2/4/5 and fc6/7)
  --seed N              seed of everything random (default ${DEFAULTS.seed})
  --max-steps N         stop after N steps in all (default: no limit)
  --time-limit MIN      stop, evaluate and save after MIN minutes (default ${DEFAULTS.timeLimit}; 0: none)

Ablations (paper sections in brackets)
  --activation NAME     relu (default) | tanh                       [3.1]
  --no-lrn              no local response normalization            [3.3]
  --pool NAME           overlap (3x3 stride 2, default) | plain (2x2) [3.4]
  --groups N            2 (default, the two-GPU split) | 1           [3.2]
  --no-dropout          no dropout in fc6 and fc7                  [4.2]
  --no-pca              no PCA colour augmentation (photos only)   [4.1]

Run
  --out DIR             run folder (default ${DEFAULTS.out})
  --resume              continue the run in --out from its last checkpoint
  --checkpoint-every N  also save a checkpoint every N steps (default ${DEFAULTS.checkpointEvery})
  --device NAME         auto (default) | cpu | gpu
  --devices N           2: split the grouped layers over two GPU devices as the paper's
                        two GPUs were (section 3.2), reporting the transfer time
  --plain               plain progress lines (automatic when output is not a terminal)
  --help                this text
`;

/** A command-line mistake; the message says what was wrong, and the caller prints the help. */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

function choice<T extends string>(flag: string, value: string, options: readonly T[]): T {
  if (!options.includes(value as T)) {
    throw new UsageError(`--${flag} must be one of ${options.join(", ")}; got "${value}"`);
  }
  return value as T;
}

function numberFlag(
  flag: string,
  value: string,
  { integer = false, min = -Infinity, minExclusive = false } = {},
): number {
  const x = Number(value);
  const tooSmall = minExclusive ? x <= min : x < min;
  if (value.trim() === "" || !Number.isFinite(x) || (integer && !Number.isInteger(x)) || tooSmall) {
    const kind = integer ? "an integer" : "a number";
    const bound = min === -Infinity
      ? ""
      : minExclusive
      ? ` greater than ${min}`
      : ` of at least ${min}`;
    throw new UsageError(`--${flag} must be ${kind}${bound}; got "${value}"`);
  }
  return x;
}

/** Parses command-line arguments; throws {@link UsageError} on a bad flag. Returns null for --help. */
export function parseTrainArgs(
  args: string[],
  defaults: TrainConfig = DEFAULTS,
): TrainConfig | null {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        arch: { type: "string" },
        data: { type: "string" },
        epochs: { type: "string" },
        "batch-size": { type: "string" },
        lr: { type: "string" },
        momentum: { type: "string" },
        "weight-decay": { type: "string" },
        schedule: { type: "string" },
        "sgd-rule": { type: "string" },
        init: { type: "string" },
        seed: { type: "string" },
        out: { type: "string" },
        device: { type: "string" },
        devices: { type: "string" },
        resume: { type: "boolean" },
        activation: { type: "string" },
        "no-lrn": { type: "boolean" },
        "no-dropout": { type: "boolean" },
        pool: { type: "string" },
        groups: { type: "string" },
        "no-pca": { type: "boolean" },
        workers: { type: "string" },
        download: { type: "boolean" },
        "train-limit": { type: "string" },
        "test-limit": { type: "string" },
        "max-steps": { type: "string" },
        "time-limit": { type: "string" },
        "checkpoint-every": { type: "string" },
        plain: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const v = parsed.values;
  if (v.help) return null;
  const c: TrainConfig = { ...defaults };
  if (v.arch !== undefined) {
    c.arch = choice("arch", v.arch, ["alexnet", "alexnet-mini", "alexnet-torchvision"] as const);
  }
  if (v.data !== undefined) c.data = v.data;
  if (v.epochs !== undefined) c.epochs = numberFlag("epochs", v.epochs, { integer: true, min: 1 });
  if (v["batch-size"] !== undefined) {
    c.batchSize = numberFlag("batch-size", v["batch-size"], { integer: true, min: 1 });
  }
  if (v.lr !== undefined) c.lr = numberFlag("lr", v.lr, { min: 0, minExclusive: true });
  if (v.momentum !== undefined) c.momentum = numberFlag("momentum", v.momentum, { min: 0 });
  if (v["weight-decay"] !== undefined) {
    c.weightDecay = numberFlag("weight-decay", v["weight-decay"], { min: 0 });
  }
  if (v.schedule !== undefined) {
    c.schedule = choice("schedule", v.schedule, ["plateau", "step", "cosine", "none"] as const);
  }
  if (v["sgd-rule"] !== undefined) {
    c.sgdRule = choice("sgd-rule", v["sgd-rule"], ["paper", "pytorch"] as const);
  }
  if (v.init !== undefined) c.init = choice("init", v.init, ["he", "paper"] as const);
  if (v.seed !== undefined) c.seed = numberFlag("seed", v.seed, { integer: true, min: 0 });
  if (v.out !== undefined) c.out = v.out;
  if (v.device !== undefined) {
    c.device = choice("device", v.device, ["auto", "cpu", "gpu"] as const);
  }
  if (v.devices !== undefined) {
    c.devices = Number(choice("devices", v.devices, ["1", "2"] as const)) as 1 | 2;
  }
  if (v.resume) c.resume = true;
  if (v.activation !== undefined) {
    c.activation = choice("activation", v.activation, ["relu", "tanh"] as const);
  }
  if (v["no-lrn"]) c.lrn = false;
  if (v["no-dropout"]) c.dropout = false;
  if (v.pool !== undefined) c.pool = choice("pool", v.pool, ["overlap", "plain"] as const);
  if (v.groups !== undefined) {
    c.groups = Number(choice("groups", v.groups, ["1", "2"] as const)) as 1 | 2;
  }
  if (v["no-pca"]) c.pca = false;
  if (v.download) c.download = true;
  if (v.workers !== undefined) {
    c.workers = numberFlag("workers", v.workers, { integer: true, min: 0 });
  }
  if (v["train-limit"] !== undefined) {
    c.trainLimit = numberFlag("train-limit", v["train-limit"], { integer: true, min: 0 });
  }
  if (v["test-limit"] !== undefined) {
    c.testLimit = numberFlag("test-limit", v["test-limit"], { integer: true, min: 0 });
  }
  if (v["max-steps"] !== undefined) {
    c.maxSteps = numberFlag("max-steps", v["max-steps"], { integer: true, min: 0 });
  }
  if (v["time-limit"] !== undefined) {
    c.timeLimit = numberFlag("time-limit", v["time-limit"], { min: 0 });
  }
  if (v["checkpoint-every"] !== undefined) {
    c.checkpointEvery = numberFlag("checkpoint-every", v["checkpoint-every"], {
      integer: true,
      min: 1,
    });
  }
  if (v.plain) c.plain = true;
  return c;
}
