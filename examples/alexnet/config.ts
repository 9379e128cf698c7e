/**
 * The training run's configuration: every flag of `deno task train-alexnet`, its default and
 * where that default comes from, and the parser that turns argv into a {@link TrainConfig}.
 *
 * @module
 */

import { parseArgs, type ParseArgsConfig } from "node:util";

/** The networks train-alexnet can train. */
export const ARCHS = ["alexnet", "alexnet-mini", "alexnet-torchvision", "figure1-cnn"] as const;

/** Which network to train. */
export type Arch = typeof ARCHS[number];

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
  /** Weight initialisation; "auto" is each network's own default (see {@link HELP}). */
  init: "auto" | "he" | "paper" | "pytorch" | "xavier";
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
  /** Start afresh in an `out` that holds a run, replacing it. */
  overwrite: boolean;
  /** Ablation: ReLU (paper section 3.1) or tanh. */
  activation: "relu" | "tanh";
  /** Ablation: local response normalization on (section 3.3). */
  lrn: boolean;
  /** Ablation: dropout in the fully connected layers (section 4.2). */
  dropout: boolean;
  /** Ablation: overlapping 3x3/2 pooling (section 3.4), plain 2x2/2, or 2x2/2 at the overlapping net's map sizes. */
  pool: "overlap" | "plain" | "plain-matched";
  /** Ablation: the two-GPU channel groups (section 3.2), 2, or one group. */
  groups: 1 | 2;
  /** Ablation: the paper's one-GPU comparison net, half the kernels in conv1-4 (section 3.2). */
  oneGpu: boolean;
  /** Ablation: PCA colour augmentation (section 4.1) for photo datasets. */
  pca: boolean;
  /** Width of the hidden fully connected layers (0: the network's own). */
  fcWidth: number;
  /** LRN's alpha (paper: 1e-4, section 3.3). */
  lrnAlpha: number;
  /** Training images evaluated in evaluation mode (dropout off) after each epoch (0: none). */
  evalTrain: number;
  /** A "step" metric record every N steps (the mean of those N steps). */
  logEvery: number;
  /** Fashion-MNIST: random 28x28 crops of the image padded by N pixels (0: none; section 4.1's translations). */
  padCrop: number;
  /** Data-loading workers (0: in-process). */
  workers: number;
  /** Download the full Fashion-MNIST (checked against its SHA-256) into the cache first. */
  download: boolean;
  /** Use only the first N training images (0: all); for quick experiments and tests. */
  trainLimit: number;
  /** Use only the first N test images (0: all). */
  testLimit: number;
  /** Training images held out as the validation split ("auto": 1,000 of the built-in subset, 5,000 of the full set, a tenth of an ImageFolder). */
  valSize: number | "auto";
  /** Stop after this many steps in all (0: no limit); for quick experiments and tests. */
  maxSteps: number;
  /** Minutes after which training stops, evaluates and saves (0: no limit). */
  timeLimit: number;
  /** Save a checkpoint every N steps as well as after every epoch. */
  checkpointEvery: number;
  /** Print the progress without colours or carriage returns (automatic when not a terminal). */
  plain: boolean;
}

/** Defaults: the mini model on Fashion-MNIST (see {@link defaultsFor} for the other networks). */
export const DEFAULTS: TrainConfig = {
  arch: "alexnet-mini",
  data: null,
  epochs: 15,
  batchSize: 128, // paper section 5
  // Not the paper's 0.01: this example's choice for the mini model and its short default run
  // (HELP marks it).
  lr: 0.02,
  momentum: 0.9, // paper section 5
  weightDecay: 0.0005, // paper section 5
  schedule: "plateau", // paper section 5: divide by 10 when validation error stops improving
  sgdRule: "paper",
  init: "auto",
  seed: 1,
  out: "runs/alexnet",
  device: "auto",
  devices: 1,
  resume: false,
  overwrite: false,
  activation: "relu",
  lrn: true,
  dropout: true,
  pool: "overlap",
  groups: 2,
  oneGpu: false,
  pca: true,
  fcWidth: 0,
  lrnAlpha: 1e-4, // paper section 3.3
  evalTrain: 0,
  logEvery: 10,
  padCrop: 0,
  workers: 0,
  download: false,
  trainLimit: 0,
  testLimit: 0,
  valSize: "auto",
  maxSteps: 0,
  // The default run must finish within 10 minutes on a 2-core machine, evaluation included.
  timeLimit: 9,
  checkpointEvery: 100,
  plain: false,
};

/**
 * The defaults that depend on the network: the paper's lr 0.01 for `alexnet` and
 * `alexnet-torchvision`, this example's 0.02 for the mini model. Initialisation stays
 * "auto": each builder's own default (the paper's for `alexnet`, He for the mini model, PyTorch's
 * for torchvision's variant).
 */
export function defaultsFor(arch: Arch): TrainConfig {
  return { ...DEFAULTS, arch, lr: arch === "alexnet-mini" ? DEFAULTS.lr : 0.01 };
}

/** The `--help` text. */
export const HELP = `Train AlexNet (Krizhevsky, Sutskever and Hinton, 2012) with tessera.

Usage: deno task train-alexnet [options]

With no options: trains the mini AlexNet on Fashion-MNIST (the full set when installed,
else the subset built into the repository) on the faster device, and writes metrics,
checkpoints and pictures to runs/alexnet. A validation split held out from the training
images (fixed seed) drives the schedule and picks best.safetensors; the test set is
evaluated for the report only.

Model and data
  --arch NAME           alexnet-mini (default) | alexnet | alexnet-torchvision |
                        figure1-cnn (the small unregularised net of Figure 1)
  --data PATH           IDX folder (Fashion-MNIST), CIFAR-10 binary folder (data_batch_1.bin
                        ... test_batch.bin: 3x32x32, per-channel normalisation) or
                        ImageFolder root (one folder per class)
  --download            fetch the full Fashion-MNIST into ~/.cache/tessera (SHA-256 checked)
  --val-size N          training images held out for validation (default: 1,000 of the
                        built-in 10,000; 5,000 of the full 60,000; a tenth of an ImageFolder)
  --train-limit N       use only the first N training images (default: all)
  --test-limit N        use only the first N test images (default: all)
  --workers N           data-loading workers (default ${DEFAULTS.workers})

Training (defaults: paper section 5 unless marked *)
  --epochs N            epochs (default ${DEFAULTS.epochs}*: the paper trained about 90)
  --batch-size N        images per step (default ${DEFAULTS.batchSize})
  --lr X                initial learning rate (default 0.01; ${DEFAULTS.lr}* for alexnet-mini:
                        this example's choice for the small net and its short default run,
                        not the paper's)
  --momentum X          momentum (default ${DEFAULTS.momentum})
  --weight-decay X      weight decay (default ${DEFAULTS.weightDecay})
  --schedule NAME       plateau (default: /10 when validation error stops improving for two
                        epochs) | step | cosine | none
  --sgd-rule NAME       paper (default) | pytorch
  --init NAME           auto (default: paper for alexnet; he* for alexnet-mini, on which the
                        paper's leaves a small net at chance; pytorch for alexnet-torchvision)
                        | paper (N(0, 0.01^2), biases 1 in conv2/4/5 and fc6/7) | he | pytorch
                        | xavier (figure1-cnn only: Glorot normal, the scale made for tanh)
  --seed N              seed of everything random (default ${DEFAULTS.seed})
  --max-steps N         stop after N steps in all (default: no limit)
  --time-limit MIN      stop, evaluate and save after MIN minutes (default ${DEFAULTS.timeLimit}*; 0: none)
  --eval-train N        also evaluate N training images in evaluation mode (dropout off)
                        after each epoch: the train-validation gap (default 0: none)
  --log-every N         a step record in metrics.jsonl every N steps (default ${DEFAULTS.logEvery})
  --pad-crop N          Fashion-MNIST: train on random 28x28 crops of the image padded by N
                        pixels (section 4.1's translations; default 0: none)

Ablations (paper sections in brackets)
  --activation NAME     relu (default) | tanh                       [3.1]
  --no-lrn              no local response normalization            [3.3]
  --pool NAME           overlap (3x3 stride 2, default) | plain (2x2) [3.4]
                        | plain-matched (2x2, conv padding lowered so the
                        maps keep the overlapping net's sizes)
  --fc-width N          width of the hidden fc layers (default: the network's)
  --lrn-alpha X         LRN's alpha (default 1e-4)                   [3.3]
  --groups N            2 (default, the two-GPU split) | 1           [3.2]
  --one-gpu             the one-GPU net of the paper's comparison: half
                        the kernels in conv1-conv4, no groups         [3.2]
  --no-dropout          no dropout in fc6 and fc7                  [4.2]
  --no-pca              no PCA colour augmentation (photos only)   [4.1]

Run
  --out DIR             run folder (default ${DEFAULTS.out})
  --resume              continue the run in --out from its last checkpoint; flags that change
                        the recipe are refused, --epochs, --max-steps, --time-limit, --device,
                        --workers, --checkpoint-every and --plain take the new value
  --overwrite           start afresh in an --out that holds a run, replacing it
  --checkpoint-every N  also save a checkpoint every N steps (default ${DEFAULTS.checkpointEvery})
  --device NAME         auto (default) | cpu | gpu
  --devices N           2: split the grouped layers over two GPU devices as the paper's
                        two GPUs were (section 3.2), reporting the transfer time; writes
                        metrics, pictures and best.safetensors but no resumable checkpoint
                        (so no --resume, --checkpoint-every or --device there)
  --plain               plain progress lines (automatic when output is not a terminal)
  --help                this text
`;

/** A command-line mistake; the message says what was wrong (callers add "see --help"). */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

// Decimal numbers only: Number() would also take " 0x10" (16), "1e", "Infinity" or "".
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses a flag's number strictly: decimal notation only, finite, an integer when asked, and
 * at least (or above) `min`. The message names the flag and the value.
 */
export function parseNumberFlag(
  flag: string,
  value: string,
  { integer = false, min = -Infinity, minExclusive = false } = {},
): number {
  const x = DECIMAL.test(value) ? Number(value) : NaN;
  const tooSmall = minExclusive ? x <= min : x < min;
  if (!Number.isFinite(x) || (integer && !Number.isInteger(x)) || tooSmall) {
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

/** node:util's parseArgs, its errors as {@link UsageError}s (their first line says it all). */
export function parseFlags<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0]);
  }
}

/** The --device flag: "cpu" (the default) or "gpu". */
export function deviceFlag(value: string | undefined): "cpu" | "gpu" {
  const device = value ?? "cpu";
  if (device !== "cpu" && device !== "gpu") {
    throw new UsageError(`--device must be cpu or gpu; got "${device}"`);
  }
  return device;
}

/** The --crops flag (`value`, parsed as `crops`): 1 (the centre) or 10 (paper section 4.1). */
export function cropsFlag(crops: number, value: string | undefined): 1 | 10 {
  if (crops !== 1 && crops !== 10) {
    throw new UsageError(`--crops must be 1 or 10; got "${value}"`);
  }
  return crops;
}

function choice<T extends string>(flag: string, value: string, options: readonly T[]): T {
  if (!options.includes(value as T)) {
    throw new UsageError(`--${flag} must be one of ${options.join(", ")}; got "${value}"`);
  }
  return value as T;
}

/** How a flag relates to a resumed run: part of its recipe, or of how this session runs. */
type OnResume = "recipe" | "session";

/** One flag: the config field it sets, how it parses, and what it means on --resume. */
interface Flag {
  key: keyof TrainConfig;
  parse: ((value: string) => unknown) | { set: unknown };
  onResume: OnResume;
}

const int = (flag: string, min: number) => (v: string) =>
  parseNumberFlag(flag, v, { integer: true, min });
const oneOf = (flag: string, options: readonly string[]) => (v: string) => choice(flag, v, options);

/** Every flag of train-alexnet. Boolean flags carry the value they set. */
const FLAGS: Record<string, Flag> = {
  arch: { key: "arch", parse: oneOf("arch", ARCHS), onResume: "recipe" },
  data: { key: "data", parse: (v) => v, onResume: "recipe" },
  epochs: { key: "epochs", parse: int("epochs", 1), onResume: "session" },
  "batch-size": { key: "batchSize", parse: int("batch-size", 1), onResume: "recipe" },
  lr: {
    key: "lr",
    parse: (v) => parseNumberFlag("lr", v, { min: 0, minExclusive: true }),
    onResume: "recipe",
  },
  momentum: {
    key: "momentum",
    parse: (v) => parseNumberFlag("momentum", v, { min: 0 }),
    onResume: "recipe",
  },
  "weight-decay": {
    key: "weightDecay",
    parse: (v) => parseNumberFlag("weight-decay", v, { min: 0 }),
    onResume: "recipe",
  },
  schedule: {
    key: "schedule",
    parse: oneOf("schedule", ["plateau", "step", "cosine", "none"]),
    onResume: "recipe",
  },
  "sgd-rule": {
    key: "sgdRule",
    parse: oneOf("sgd-rule", ["paper", "pytorch"]),
    onResume: "recipe",
  },
  init: {
    key: "init",
    parse: oneOf("init", ["auto", "he", "paper", "pytorch", "xavier"]),
    onResume: "recipe",
  },
  seed: { key: "seed", parse: int("seed", 0), onResume: "recipe" },
  out: { key: "out", parse: (v) => v, onResume: "session" },
  device: { key: "device", parse: oneOf("device", ["auto", "cpu", "gpu"]), onResume: "session" },
  devices: {
    key: "devices",
    parse: (v) => Number(choice("devices", v, ["1", "2"])),
    onResume: "recipe",
  },
  resume: { key: "resume", parse: { set: true }, onResume: "session" },
  overwrite: { key: "overwrite", parse: { set: true }, onResume: "session" },
  activation: {
    key: "activation",
    parse: oneOf("activation", ["relu", "tanh"]),
    onResume: "recipe",
  },
  "no-lrn": { key: "lrn", parse: { set: false }, onResume: "recipe" },
  "no-dropout": { key: "dropout", parse: { set: false }, onResume: "recipe" },
  pool: {
    key: "pool",
    parse: oneOf("pool", ["overlap", "plain", "plain-matched"]),
    onResume: "recipe",
  },
  "fc-width": { key: "fcWidth", parse: int("fc-width", 0), onResume: "recipe" },
  "lrn-alpha": {
    key: "lrnAlpha",
    parse: (v) => parseNumberFlag("lrn-alpha", v, { min: 0 }),
    onResume: "recipe",
  },
  "eval-train": { key: "evalTrain", parse: int("eval-train", 0), onResume: "recipe" },
  "log-every": { key: "logEvery", parse: int("log-every", 1), onResume: "recipe" },
  "pad-crop": { key: "padCrop", parse: int("pad-crop", 0), onResume: "recipe" },
  groups: {
    key: "groups",
    parse: (v) => Number(choice("groups", v, ["1", "2"])),
    onResume: "recipe",
  },
  "one-gpu": { key: "oneGpu", parse: { set: true }, onResume: "recipe" },
  "no-pca": { key: "pca", parse: { set: false }, onResume: "recipe" },
  workers: { key: "workers", parse: int("workers", 0), onResume: "session" },
  download: { key: "download", parse: { set: true }, onResume: "session" },
  "val-size": {
    key: "valSize",
    parse: (v) => v === "auto" ? v : parseNumberFlag("val-size", v, { integer: true, min: 1 }),
    onResume: "recipe",
  },
  "train-limit": { key: "trainLimit", parse: int("train-limit", 0), onResume: "recipe" },
  "test-limit": { key: "testLimit", parse: int("test-limit", 0), onResume: "recipe" },
  "max-steps": { key: "maxSteps", parse: int("max-steps", 0), onResume: "session" },
  "time-limit": {
    key: "timeLimit",
    parse: (v) => parseNumberFlag("time-limit", v, { min: 0 }),
    onResume: "session",
  },
  "checkpoint-every": {
    key: "checkpointEvery",
    parse: int("checkpoint-every", 1),
    onResume: "session",
  },
  plain: { key: "plain", parse: { set: true }, onResume: "session" },
};

/** The config field -> the flag that sets it, for messages. */
export function flagOf(key: keyof TrainConfig): string {
  const name = Object.keys(FLAGS).find((f) => FLAGS[f].key === key && !f.startsWith("no-"));
  return `--${name ?? Object.keys(FLAGS).find((f) => FLAGS[f].key === key)}`;
}

/** A parsed command line: the configuration and the fields the user set explicitly. */
export interface TrainCommand {
  /** The run's configuration. */
  config: TrainConfig;
  /** Fields given on the command line (a resumed run checks these against its checkpoint). */
  given: Set<keyof TrainConfig>;
}

/**
 * Node's parseArgs reads "-1" as an option; joins a value flag with a negative-number value
 * ("--lr", "-1" -> "--lr=-1") so the value is judged for what it is.
 */
function joinNegativeValues(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const flag = FLAGS[args[i].replace(/^--/, "")];
    const takesValue = args[i].startsWith("--") && flag && typeof flag.parse === "function";
    if (takesValue && i + 1 < args.length && /^-[\d.]/.test(args[i + 1])) {
      out.push(`${args[i]}=${args[++i]}`);
    } else out.push(args[i]);
  }
  return out;
}

/** Parses a command line; throws {@link UsageError} on a bad flag. Returns null for --help. */
export function parseTrainCommand(args: string[]): TrainCommand | null {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    help: { type: "boolean", short: "h" },
  };
  for (const [name, flag] of Object.entries(FLAGS)) {
    options[name] = { type: typeof flag.parse === "function" ? "string" : "boolean" };
  }
  const values = parseFlags({
    args: joinNegativeValues(args),
    strict: true,
    allowPositionals: false,
    options,
  }).values as Record<string, string | boolean | undefined>;
  if (values.help) return null;
  const arch = values.arch === undefined
    ? DEFAULTS.arch
    : choice("arch", values.arch as string, ARCHS);
  const config = defaultsFor(arch) as unknown as Record<string, unknown>;
  const given = new Set<keyof TrainConfig>();
  for (const [name, flag] of Object.entries(FLAGS)) {
    const value = values[name];
    if (value === undefined || value === false) continue;
    config[flag.key] = typeof flag.parse === "function"
      ? flag.parse(value as string)
      : flag.parse.set;
    given.add(flag.key);
  }
  const result = config as unknown as TrainConfig;
  checkFlagCombinations(result, given);
  return { config: result, given };
}

/** Parses command-line arguments into a configuration; null for --help. */
export function parseTrainArgs(args: string[]): TrainConfig | null {
  return parseTrainCommand(args)?.config ?? null;
}

/** Flags that cannot go together, or that a mode cannot honour. */
function checkFlagCombinations(config: TrainConfig, given: Set<keyof TrainConfig>): void {
  if (config.resume && config.overwrite) {
    throw new UsageError("--resume and --overwrite contradict each other: pick one");
  }
  if (config.devices === 2) {
    for (const key of ["resume", "checkpointEvery", "device"] as const) {
      if (given.has(key)) {
        throw new UsageError(
          `${flagOf(key)} is not available with --devices 2 (it writes no resumable ` +
            `checkpoint and always uses two GPU devices)`,
        );
      }
    }
    if (config.arch === "alexnet-torchvision") {
      throw new UsageError(
        "--devices 2 splits the 2012 paper's network (alexnet, alexnet-mini); torchvision's " +
          "variant was never split",
      );
    }
    if (config.arch === "figure1-cnn") {
      throw new UsageError("--devices 2 splits AlexNet's grouped layers; figure1-cnn has none");
    }
  }
  if (config.init === "xavier" && config.arch !== "figure1-cnn") {
    throw new UsageError("--init xavier is for figure1-cnn (AlexNet's are paper, he, pytorch)");
  }
}

/** What each field of a saved configuration must be: a check and its description. */
const FIELD_CHECKS: Record<keyof TrainConfig, [(v: unknown) => boolean, string]> = (() => {
  const isInt = (min: number) => (v: unknown) => Number.isInteger(v) && (v as number) >= min;
  const isNum = (min: number, exclusive = false) => (v: unknown) =>
    typeof v === "number" && Number.isFinite(v) && (exclusive ? v > min : v >= min);
  const isOneOf = (...options: unknown[]) => (v: unknown) => options.includes(v);
  const isBool = (v: unknown) => typeof v === "boolean";
  const isString = (v: unknown) => typeof v === "string" && v !== "";
  return {
    arch: [isOneOf(...ARCHS), `one of ${ARCHS.join(", ")}`],
    data: [(v) => v === null || isString(v), "null or a path"],
    epochs: [isInt(1), "an integer of at least 1"],
    batchSize: [isInt(1), "an integer of at least 1"],
    lr: [isNum(0, true), "a number greater than 0"],
    momentum: [isNum(0), "a number of at least 0"],
    weightDecay: [isNum(0), "a number of at least 0"],
    schedule: [isOneOf("plateau", "step", "cosine", "none"), "plateau, step, cosine or none"],
    sgdRule: [isOneOf("paper", "pytorch"), "paper or pytorch"],
    init: [
      isOneOf("auto", "he", "paper", "pytorch", "xavier"),
      "auto, he, paper, pytorch or xavier",
    ],
    seed: [isInt(0), "an integer of at least 0"],
    out: [isString, "a path"],
    devices: [isOneOf(1, 2), "1 or 2"],
    device: [isOneOf("auto", "cpu", "gpu"), "auto, cpu or gpu"],
    resume: [isBool, "true or false"],
    overwrite: [isBool, "true or false"],
    activation: [isOneOf("relu", "tanh"), "relu or tanh"],
    lrn: [isBool, "true or false"],
    dropout: [isBool, "true or false"],
    pool: [isOneOf("overlap", "plain", "plain-matched"), "overlap, plain or plain-matched"],
    groups: [isOneOf(1, 2), "1 or 2"],
    oneGpu: [isBool, "true or false"],
    pca: [isBool, "true or false"],
    fcWidth: [isInt(0), "an integer of at least 0"],
    lrnAlpha: [isNum(0), "a number of at least 0"],
    evalTrain: [isInt(0), "an integer of at least 0"],
    logEvery: [isInt(1), "an integer of at least 1"],
    padCrop: [isInt(0), "an integer of at least 0"],
    workers: [isInt(0), "an integer of at least 0"],
    download: [isBool, "true or false"],
    trainLimit: [isInt(0), "an integer of at least 0"],
    testLimit: [isInt(0), "an integer of at least 0"],
    valSize: [(v) => v === "auto" || isInt(1)(v), '"auto" or an integer of at least 1'],
    maxSteps: [isInt(0), "an integer of at least 0"],
    timeLimit: [isNum(0), "a number of at least 0"],
    checkpointEvery: [isInt(1), "an integer of at least 1"],
    plain: [isBool, "true or false"],
  };
})();

/**
 * Checks a configuration read from a file (a checkpoint's metadata) field by field; the error
 * names `where` (the file) and the field. Returns it typed.
 */
export function checkConfig(value: unknown, where: string): TrainConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`${where}: "config" must be an object, got ${JSON.stringify(value)}`);
  }
  // Fields added after a checkpoint was written take their defaults (the recipe it ran).
  const record: Record<string, unknown> = { ...ADDED_LATER, ...(value as Record<string, unknown>) };
  for (const [key, [ok, expected]] of Object.entries(FIELD_CHECKS)) {
    if (!ok(record[key])) {
      throw new Error(
        `${where}: "config.${key}" must be ${expected}, got ${JSON.stringify(record[key])}`,
      );
    }
  }
  return record as unknown as TrainConfig;
}

/** Fields a checkpoint written before they existed lacks, with the value its run had. */
const ADDED_LATER: Partial<TrainConfig> = {
  fcWidth: 0,
  lrnAlpha: 1e-4,
  evalTrain: 0,
  logEvery: 10,
  padCrop: 0,
};

/**
 * The configuration of a resumed run: the checkpoint's, with this session's choices of how
 * long and where to run where it gives them. A recipe flag given now that differs from the checkpoint is an
 * error; a session flag that differs is taken, and `say` is told which value wins.
 */
export function resumedConfig(
  saved: TrainConfig,
  command: TrainCommand,
  say: (text: string) => void,
): TrainConfig {
  const config: Record<string, unknown> = { ...saved };
  const now = command.config as unknown as Record<string, unknown>;
  for (const flag of Object.values(FLAGS)) {
    const key = flag.key;
    if (!command.given.has(key) || key === "resume" || key === "out") continue;
    if (JSON.stringify(now[key]) === JSON.stringify(config[key])) continue;
    if (flag.onResume === "recipe") {
      throw new UsageError(
        `${flagOf(key)} ${JSON.stringify(now[key])} contradicts the checkpoint's ` +
          `${JSON.stringify(config[key])}: a resumed run keeps its recipe (drop the flag, or ` +
          `start a new run with another --out)`,
      );
    }
    say(
      `${flagOf(key)}: ${JSON.stringify(now[key])} replaces the checkpoint's ` +
        `${JSON.stringify(config[key])}`,
    );
    config[key] = now[key];
  }
  // A stopping point, a time budget and the display belong to one invocation: a resumed run
  // gets this session's (given or default), not the ones that ended the last session. Every
  // other field not given keeps the checkpoint's value (--epochs, --device included).
  for (const key of ["maxSteps", "timeLimit", "plain", "download"] as const) {
    if (!command.given.has(key)) config[key] = now[key];
  }
  return {
    ...(config as unknown as TrainConfig),
    resume: true,
    overwrite: false,
    out: now.out as string,
  };
}
