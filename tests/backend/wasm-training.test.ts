import { describe, it } from 'vitest';
import { expectSameTraining, trainSmallNet } from './small-net.js';

/** The small net of small-net.ts on wasm (difflab's training kernels) against the cpu backend. */
describe('training a conv net with a class embedding on wasm', () => {
  it('matches the cpu backend step by step and leaks nothing', async () => {
    const wasm = await trainSmallNet('wasm');
    const cpu = await trainSmallNet('cpu');
    expectSameTraining(wasm, cpu);
  });
});
