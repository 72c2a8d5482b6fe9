export { freePort, startTestRedis, type TestRedis } from "./redis-server.ts";
