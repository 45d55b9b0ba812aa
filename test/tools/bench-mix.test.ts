import { describe, expect, it } from 'vitest';
import { MixState, mixGenerator, type MixSpec, zipfSampler, seededRandom } from '../../tools/bench/mix.ts';

describe('the realistic benchmark mix', () => {
  const spec = (): MixSpec =>
    ({
      caseIds: Array.from({ length: 5000 }, (_, i) => String(100_000 + i)),
      queues: Array.from({ length: 36 }, (_, i) => ({ name: `q${i}`, variables: { first: 25 + i } })),
      reserved: new Set(['100001']),
      notesPerCase: 3,
      runId: 'test',
      caseQuery: 'query CaseContext { x }',
      queueQuery: 'query CaseQueue { x }',
      writeQuery: 'mutation RecordCaseUpdate { x }',
    }) as unknown as MixSpec;

  it('gives every gateway the same requests for a seed and connection, and another sequence for another seed', () => {
    const draw = (seed: number, connection: number) => {
      const next = mixGenerator(new MixState(spec()), seed, connection);
      return Array.from({ length: 200 }, () => next().body);
    };
    expect(draw(1, 0)).toEqual(draw(1, 0));
    expect(draw(1, 0)).not.toEqual(draw(2, 0));
    expect(draw(1, 0)).not.toEqual(draw(1, 1));
  });

  it('splits reads of many distinct cases, queue views and capped writes about 70/28/2', () => {
    const state = new MixState(spec());
    const next = mixGenerator(state, 7, 0);
    const kinds = { CaseContext: 0, CaseQueue: 0, write: 0 };
    const cases = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const request = next();
      kinds[request.kind]++;
      if (request.kind === 'CaseContext') cases.add(JSON.parse(request.body).variables.id);
    }
    expect(kinds.CaseContext / 20_000).toBeCloseTo(0.7, 1);
    expect(kinds.CaseQueue / 20_000).toBeCloseTo(0.28, 1);
    expect(kinds.write).toBeGreaterThan(200);
    expect(cases.size).toBeGreaterThan(1000);
    expect(state.notes.has('100001')).toBe(false);
    expect(Math.max(...state.notes.values())).toBeLessThanOrEqual(3);
  });

  it('draws ranks Zipf-like: the first rank about twice as often as the second', () => {
    const rank = zipfSampler(5000);
    const random = seededRandom(3);
    const counts = new Map<number, number>();
    for (let i = 0; i < 100_000; i++) {
      const r = rank(random);
      counts.set(r, (counts.get(r) ?? 0) + 1);
    }
    const ratio = (counts.get(0) ?? 0) / (counts.get(1) ?? 1);
    expect(ratio).toBeGreaterThan(1.6);
    expect(ratio).toBeLessThan(2.5);
    expect(Math.max(...counts.keys())).toBeGreaterThan(4000);
  });
});
