import { TOOL_CALL_END, TOOL_CALL_START, type ToolChoice, type ToolDefinition } from "@smollm/chat";
import type { GenerationConstraint } from "./generation.ts";
import { lowerJsonSchema, type GrammarSchema } from "./json-schema-lowering.ts";

/** Most calls one turn may hold when parallel calls are allowed (a grammar needs a bound). */
export const MAX_PARALLEL_TOOL_CALLS = 8;

/** Arguments of a function declared without `parameters`: none, `{}`. */
const NO_PARAMETERS: GrammarSchema = { type: "object", properties: {} };

/**
 * The constraint that makes the model call a function, for `tool_choice`
 * `required` (any of the tools) or a named function: its whole output is
 * `<tool_call>\n{"name": …, "arguments": …}\n</tool_call>`, the name one of
 * the allowed ones and the arguments valid for that function's schema, once
 * or (parallel calls) up to {@link MAX_PARALLEL_TOOL_CALLS} times. Undefined
 * for `auto` and `none`, where the model decides.
 *
 * @throws RequestParamError when a function's parameters use a keyword the grammar cannot enforce.
 */
export function toolCallConstraint(
  tools: readonly ToolDefinition[],
  choice: ToolChoice,
  parallel: boolean,
): GenerationConstraint | undefined {
  if (choice.type !== "required" && choice.type !== "function") return undefined;
  const branches: GrammarSchema[] = [];
  tools.forEach((tool, i) => {
    if (choice.type === "function" && tool.name !== choice.name) return;
    const args = tool.parameters === undefined ? NO_PARAMETERS : lowerJsonSchema(tool.parameters, `tools[${i}].function.parameters`);
    branches.push({ type: "object", properties: { name: { const: tool.name }, arguments: args } });
  });
  const schema = branches.length === 1 ? (branches[0] as GrammarSchema) : { oneOf: branches };
  return {
    jsonSchema: JSON.stringify(schema),
    prefix: `${TOOL_CALL_START}\n`,
    suffix: `\n${TOOL_CALL_END}`,
    maxValues: parallel ? MAX_PARALLEL_TOOL_CALLS : 1,
  };
}
