/**
 * The V8 flags the gateway process runs with, wherever it is started (npm start, npm run
 * start:gateway, the benchmark; a container sets the same in NODE_OPTIONS). Node lets the heap
 * grow well past what a gateway keeps alive before it collects: under 16 connections the old
 * space reached 170 MB with about 50 MB live. A bound makes it collect sooner, and keeps the
 * process's memory predictable beside the in-memory cache (CACHE_MEMORY_MB, inside this heap).
 * Workers inherit the flags from the primary.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = ['--max-old-space-size=160'];
