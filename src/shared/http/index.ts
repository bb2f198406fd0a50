// HTTP plumbing shared by every service: listener, body limits, AWS JSON protocol, validation.
// Must never contain service logic.
export { startHttpServer, type RequestHandler, type RunningHttpServer } from './server.ts';
export { createAwsJsonEndpoint, defineOperation, pageMarkers, type AwsJsonOperation } from './aws-json.ts';
export * as fields from './validation.ts';
export { RateLimiter, ReplayGuard, parseRateLimits, DEFAULT_RATE_LIMITS, type RateClass, type RateLimits } from './rate-limit.ts';
export { createPlainJsonHandler, plainJsonPost, type PlainJsonRoute } from './plain-json.ts';
export { errorReply, sendJson } from './aws-json.ts';
export { readJsonBody } from './body.ts';
export { parseInput } from './validation.ts';
