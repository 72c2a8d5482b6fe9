import { InvalidRequestError } from "@smollm/common";

/**
 * An invalid request field, described the way the OpenAI API does: `param` is
 * the path of the field (`messages[2].role`) and `apiCode` the machine code
 * OpenAI puts in the error body (`invalid_type`, `missing_required_parameter`…).
 * It is an {@link InvalidRequestError}, so every edge maps it to HTTP 400 /
 * INVALID_ARGUMENT without knowing this class.
 */
export class RequestParamError extends InvalidRequestError {
  readonly apiCode: string;

  constructor(message: string, param: string | undefined, apiCode: string) {
    super(message, param === undefined ? {} : { param });
    this.apiCode = apiCode;
  }
}

/** The JSON type of a value as OpenAI names it in messages ("a string", "an integer", "null"…). */
export function describeJsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "string":
      return "a string";
    case "boolean":
      return "a boolean";
    case "number":
      return Number.isInteger(value) ? "an integer" : "a decimal";
    case "object":
      return "an object";
    default:
      return typeof value;
  }
}

/** `Missing required parameter: 'messages'.` */
export function missingParam(param: string): RequestParamError {
  return new RequestParamError(`Missing required parameter: '${param}'.`, param, "missing_required_parameter");
}

/** `Invalid type for 'temperature': expected a decimal, but got a string instead.` */
export function invalidType(param: string, expected: string, value: unknown): RequestParamError {
  return new RequestParamError(
    `Invalid type for '${param}': expected ${expected}, but got ${describeJsonType(value)} instead.`,
    param,
    "invalid_type",
  );
}

/** `Invalid value: 'foo'. Supported values are: 'a' and 'b'.` */
export function invalidEnumValue(param: string, value: string, supported: readonly string[]): RequestParamError {
  const quoted = supported.map((s) => `'${s}'`);
  const list = quoted.length > 1 ? `${quoted.slice(0, -1).join(", ")}, and ${quoted.at(-1)}` : (quoted[0] ?? "");
  return new RequestParamError(
    `Invalid value: '${truncate(value)}'. Supported values are: ${list}.`,
    param,
    "invalid_value",
  );
}

/** A value of the right type that is not allowed; `apiCode` defaults to `invalid_value`. */
export function invalidValue(param: string, message: string, apiCode = "invalid_value"): RequestParamError {
  return new RequestParamError(`Invalid '${param}': ${message}`, param, apiCode);
}

// Echoing a megabyte-long bad value back would make the error body huge.
function truncate(value: string): string {
  return value.length > 64 ? `${value.slice(0, 64)}…` : value;
}
