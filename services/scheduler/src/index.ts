export { loadSchedulerConfig, type SchedulerConfig } from "./config.ts";
export { startScheduler, type RunningScheduler } from "./scheduler.ts";
export { Router, type RouteDecision, type RouterOptions, type WeightedScorer } from "./router.ts";
export type { Candidate, RouteQuery, Scorer } from "./scorers/scorer.ts";
