import { renderChatPrompt, type RenderChatPromptOptions } from "@smollm/chat";
import type { ChatCompletionRequest } from "./chat-request.ts";
import type { GatewayConfig } from "./config.ts";
import type { GenerationParams } from "./generation.ts";

/**
 * What to generate for a validated chat request: the rendered SmolLM3 prompt
 * and the sampling settings with the gateway's defaults applied. Shared by
 * the HTTP and the gRPC front ends so both give the same results.
 */
export function generationParams(request: ChatCompletionRequest, config: GatewayConfig, requestId: string): GenerationParams {
  const options: RenderChatPromptOptions = {};
  if (request.enableThinking !== undefined) options.enableThinking = request.enableThinking;
  // With `tool_choice: none` the functions are not shown: the model cannot call them.
  if (request.toolChoice.type !== "none") options.tools = request.tools;
  const prompt = renderChatPrompt(request.messages, options);
  const sampling: GenerationParams["sampling"] = {
    temperature: request.temperature ?? config.defaultTemperature,
    topP: request.topP ?? config.defaultTopP,
    topK: request.topK ?? 0,
    minP: request.minP ?? 0,
    presencePenalty: request.presencePenalty ?? 0,
    frequencyPenalty: request.frequencyPenalty ?? 0,
  };
  if (request.seed !== undefined) sampling.seed = request.seed;
  return {
    requestId,
    prompt,
    maxTokens: request.maxTokens,
    sampling,
    stop: request.stop,
    ignoreEos: request.ignoreEos,
    exactPrefill: request.exactPrefill ?? false,
    ...(request.constraint === undefined ? {} : { constraint: request.constraint }),
    ...(request.topLogprobs === undefined ? {} : { topLogprobs: request.topLogprobs }),
  };
}
