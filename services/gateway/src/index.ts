export { startGateway, type Gateway } from "./gateway.ts";
export { loadConfig, type GatewayConfig } from "./config.ts";
export { hashApiKey, parseApiKeys, type ApiKeyEntry } from "./api-keys.ts";
