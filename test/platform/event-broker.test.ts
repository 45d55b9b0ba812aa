import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { embeddedBroker } from '../../platform/events/embedded-broker.ts';
import { createLogger } from '../../platform/logger.ts';
import { brokerContract } from '../helpers/broker-contract.ts';

const logger = createLogger('test', 'silent');
const dir = mkdtempSync(join(tmpdir(), 'concord-events-'));
brokerContract('embedded', () => ({
  open: async () => embeddedBroker({ file: join(dir, 'events.sqlite'), logger, pollMs: 20, retryBaseMs: 50 }),
  cleanup: async () => rmSync(dir, { recursive: true, force: true }),
}));
