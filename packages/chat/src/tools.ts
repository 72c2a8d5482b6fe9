/**
 * A function the model may call (an OpenAI `tools[i]` of type `function`),
 * validated: `parameters` is a JSON object (a JSON schema) when given.
 */
export interface ToolDefinition {
  name: string;
  description?: string;
  /** The JSON schema of the arguments, as the client sent it. */
  parameters?: Readonly<Record<string, unknown>>;
  /** OpenAI's `strict`: the client wants arguments that follow the schema exactly. */
  strict?: boolean;
}

/**
 * Which calls the model may or must make (OpenAI `tool_choice`): `auto` (it
 * decides), `none` (no call; tools are not shown to it), `required` (at least
 * one call) or one named `function`.
 */
export type ToolChoice =
  | { type: "auto" }
  | { type: "none" }
  | { type: "required" }
  | { type: "function"; name: string };
