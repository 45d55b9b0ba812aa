import type { TestProject } from 'vitest/node';
import { ensureServers } from './servers.ts';

/** Runs once before the suite: the real servers the tests start are on this machine. */
export function setup(_project: TestProject): void {
  ensureServers();
}
