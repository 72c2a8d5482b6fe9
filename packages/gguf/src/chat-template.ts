/**
 * The ChatML Jinja template stored in the tiny models' `tokenizer.chat_template`, written for
 * this project following SmolLM3's official template:
 *
 * - system turn with "## Metadata" (knowledge cutoff, `Reasoning Mode: /think|/no_think`) and
 *   "## Custom Instructions" (the system message with `/think` / `/no_think` removed, or
 *   SmolLM3's default instructions);
 * - reasoning on by default (`enable_thinking` undefined → `/think`); a `/no_think` (or
 *   `/think`) flag in the system message overrides `enable_thinking`;
 * - in no-think mode, assistant turns and the generation prompt are pre-filled with an empty
 *   think block `<think>\n\n</think>\n` after `<|im_start|>assistant\n`;
 * - tools (`tools` or `xml_tools`) are listed inside `<tools></tools>` and calls are expected as
 *   `<tool_call>{"name": …, "arguments": …}</tool_call>`; tool results are sent as user turns.
 *
 * Differences from the official template, on purpose: no "Today Date" line (it made every
 * system prompt, and thus every KV-cache prefix, change at midnight and tests nondeterministic),
 * no `{% generation %}` markers, tools rendered with `tojson` (the `string` filter of
 * node-llama-cpp's Jinja engine does not serialize objects as JSON), and assistant messages'
 * `tool_calls` rendered as `<tool_call>` blocks so a conversation can be replayed.
 */
export const SMOLLM3_CHAT_TEMPLATE = `{#- smollm-cluster ChatML template following SmolLM3's official chat template -#}
{%- if enable_thinking is not defined -%}
  {%- set enable_thinking = true -%}
{%- endif -%}
{%- if enable_thinking -%}
  {%- set reasoning_mode = "/think" -%}
{%- else -%}
  {%- set reasoning_mode = "/no_think" -%}
{%- endif -%}
{%- set custom_instructions = "" -%}
{%- set system_message = "" -%}
{%- if messages[0].role == "system" -%}
  {%- set system_message = messages[0].content if messages[0].content is string else "" -%}
  {%- if "/no_think" in system_message -%}
    {%- set reasoning_mode = "/no_think" -%}
  {%- elif "/think" in system_message -%}
    {%- set reasoning_mode = "/think" -%}
  {%- endif -%}
  {%- set custom_instructions = system_message.replace("/no_think", "").replace("/think", "").rstrip() -%}
{%- endif -%}
{%- if tools is defined and tools -%}
  {%- set xml_tools = tools -%}
{%- endif -%}
{{- "<|im_start|>system\\n" -}}
{%- if "/system_override" in system_message -%}
  {{- custom_instructions.replace("/system_override", "").rstrip() -}}
{%- else -%}
  {{- "## Metadata\\n\\n" -}}
  {{- "Knowledge Cutoff Date: June 2025\\n" -}}
  {{- "Reasoning Mode: " + reasoning_mode + "\\n\\n" -}}
  {{- "## Custom Instructions\\n\\n" -}}
  {%- if custom_instructions -%}
    {{- custom_instructions + "\\n\\n" -}}
  {%- elif reasoning_mode == "/think" -%}
    {{- "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves thoroughly exploring questions through a systematic thinking process before providing the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please structure your response into two main sections: Thought and Solution using the specified format: <think> Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. Each step should include detailed considerations such as analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The Solution section should be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.\\n\\n" -}}
  {%- else -%}
    {{- "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\\n\\n" -}}
  {%- endif -%}
  {%- if xml_tools is defined and xml_tools -%}
    {{- "### Tools\\n\\n" -}}
    {{- "You may call one or more functions to assist with the user query.\\nYou are provided with function signatures within <tools></tools> XML tags:\\n\\n<tools>\\n" -}}
    {%- for tool in xml_tools -%}
      {{- (tool | tojson) + "\\n" -}}
    {%- endfor -%}
    {{- "</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>" -}}
    {{- "\\n\\n" -}}
  {%- endif -%}
{%- endif -%}
{{- "<|im_end|>\\n" -}}
{%- for message in messages -%}
  {%- set content = message.content if message.content is string else "" -%}
  {%- if message.role == "user" -%}
    {{- "<|im_start|>user\\n" + content + "<|im_end|>\\n" -}}
  {%- elif message.role == "assistant" -%}
    {{- "<|im_start|>assistant\\n" -}}
    {%- if reasoning_mode != "/think" -%}
      {{- "<think>\\n\\n</think>\\n" -}}
    {%- endif -%}
    {{- content.lstrip("\\n") -}}
    {%- if message.tool_calls is defined and message.tool_calls -%}
      {%- for call in message.tool_calls -%}
        {%- set fn = call.function if call.function is defined else call -%}
        {{- "<tool_call>\\n{\\"name\\": " + (fn.name | tojson) + ", \\"arguments\\": " + (fn.arguments if fn.arguments is string else (fn.arguments | tojson)) + "}\\n</tool_call>" -}}
      {%- endfor -%}
    {%- endif -%}
    {{- "<|im_end|>\\n" -}}
  {%- elif message.role == "tool" -%}
    {{- "<|im_start|>user\\n" + content + "<|im_end|>\\n" -}}
  {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{- "<|im_start|>assistant\\n" -}}
  {%- if reasoning_mode != "/think" -%}
    {{- "<think>\\n\\n</think>\\n" -}}
  {%- endif -%}
{%- endif -%}
`;
