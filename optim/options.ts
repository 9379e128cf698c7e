/**
 * Checking of hyperparameters and saved optimizer or schedule state, shared by `SGD` and the
 * schedules. A value is either absent (the documented default applies) or a finite number in
 * its range; `undefined`, `null`, `NaN`, strings and the like are errors that name the caller,
 * the field and the value. Unknown option names are checked by tensor/options.ts's
 * `checkOptions`, so a misspelt or unsupported option (`weight_decay`, `nesterov`) is never
 * silently ignored.
 *
 * @module
 */

/** The range a number must lie in. */
export interface NumberRule {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Values must be greater than this. */
  above?: number;
  /** Values must be less than this. */
  below?: number;
  /** Only integers. */
  integer?: boolean;
}

/**
 * `the string "abc"`, `undefined`, `NaN`, `{"lr":1}`: a value as an error message shows it,
 * cut to about 100 characters.
 */
export function describeValue(value: unknown): string {
  const text = describeFully(value);
  return text.length > 100 ? `${text.slice(0, 97)}...` : text;
}

function describeFully(value: unknown): string {
  if (typeof value === "string") return `the string ${JSON.stringify(value)}`;
  if (typeof value === "number" || value === undefined || typeof value === "bigint") {
    return String(value);
  }
  if (typeof value === "function") return "a function";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function describeRule(rule: NumberRule): string {
  if (rule.min !== undefined && rule.below !== undefined && rule.above === undefined) {
    return `${rule.integer ? "an integer " : ""}in [${rule.min}, ${rule.below})`;
  }
  const parts: string[] = [];
  if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
  if (rule.above !== undefined) parts.push(`> ${rule.above}`);
  if (rule.below !== undefined) parts.push(`< ${rule.below}`);
  const kind = rule.integer ? "an integer" : "a finite number";
  return parts.length ? `${kind} ${parts.join(" and ")}` : kind;
}

/** Returns `value` if it is a number obeying `rule`; otherwise throws naming `where` and `name`. */
export function checkNumber(where: string, name: string, value: unknown, rule: NumberRule): number {
  const ok = typeof value === "number" && Number.isFinite(value) &&
    (!rule.integer || Number.isInteger(value)) &&
    (rule.min === undefined || value >= rule.min) &&
    (rule.above === undefined || value > rule.above) &&
    (rule.below === undefined || value < rule.below);
  if (!ok) {
    throw new RangeError(
      `${where}: ${name} must be ${describeRule(rule)}, got ${describeValue(value)}`,
    );
  }
  return value as number;
}

/**
 * The value of option `name`: `fallback` when the key is absent, else the checked value. A key
 * that is present with the value `undefined` is an error, not "use the default".
 */
export function optionalNumber(
  where: string,
  options: object,
  name: string,
  fallback: number,
  rule: NumberRule,
): number {
  if (!Object.hasOwn(options, name)) return fallback;
  const value = (options as Record<string, unknown>)[name];
  if (value === undefined) {
    throw new TypeError(
      `${where}: ${name} is undefined; leave it out for the default (${fallback}) or give a number`,
    );
  }
  return checkNumber(where, name, value, rule);
}

/** Throws unless `value` is a plain object (not null, not an array). */
export function checkObject(where: string, name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new TypeError(`${where}: ${name} must be an object, got ${describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}
