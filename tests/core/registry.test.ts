import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  MODALITY_PLUGIN,
  PluginRegistry,
  Rng,
  createDifflab,
  loadRunConfig,
  useBackend,
  type AnyModalityPlugin,
} from '../../src/index.js';
import { toyPlugin } from '../fixtures/toy-plugin/index.js';
import { expectNoTensorLeak } from '../helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

describe('plugin registry', () => {
  it('registers a plugin defined outside src/ and drives it from a config', async () => {
    const difflab = createDifflab({ plugins: [toyPlugin] });
    expect(difflab.plugins.has('toy-points')).toBe(true);
    // The same plugin object is reachable through the container's multi-binding.
    expect(difflab.container.getAll<AnyModalityPlugin>(MODALITY_PLUGIN)).toContain(toyPlugin);

    const cfg = loadRunConfig('tests/fixtures/configs/toy.yaml', difflab.plugins);
    const plugin = difflab.plugins.get(cfg.modality);
    const rng = new Rng(cfg.seed);
    const data = await plugin.openData(cfg.data, { split: 'train', baseDir: 'tests/fixtures/configs', rng, log: () => {} });
    expect(data.exampleShape).toEqual([2]);
    expect(data.size).toBe(128);
    const net = plugin.createNetwork(cfg.model, { exampleShape: data.exampleShape, numClasses: data.numClasses, rng });
    const opt = tf.train.adam(cfg.train.lr);

    // A few denoising steps (x0-prediction at a fixed noise level) must lower the loss.
    const losses: number[] = [];
    const step = async () => {
        const idx = Array.from({ length: cfg.train.batch_size }, () => rng.int(data.size));
        const batch = data.batch(idx, rng);
        const noise = rng.normalTensor(batch.x.shape);
        const sigma = tf.fill([idx.length], 0.5) as tf.Tensor1D;
        const loss = opt.minimize(() => {
          const noisy = tf.add(batch.x, tf.mul(noise, 0.5));
          return tf.mean(tf.square(tf.sub(net.apply(noisy, sigma), batch.x))) as tf.Scalar;
        }, true)!;
        losses.push((await loss.data())[0]!);
        tf.dispose([loss, noise, sigma, batch.x, batch.labels]);
    };
    // The first step creates Adam's moment variables; every later step must be leak-free.
    await step();
    await expectNoTensorLeak(async () => {
      for (let i = 0; i < 40; i++) await step();
    }, 'training loop');
    expect(losses.at(-1)!).toBeLessThan(losses[0]! * 0.7);
    opt.dispose();
    net.dispose();
  });

  it('rejects duplicate ids and malformed ids', () => {
    expect(() => new PluginRegistry([toyPlugin, toyPlugin])).toThrow(/two plugins are registered with the id 'toy-points'/);
    expect(() => new PluginRegistry([{ ...toyPlugin, id: 'Bad Id' }])).toThrow(/plugin id 'Bad Id'/);
  });

  it('an unknown id lists the registered ones', () => {
    const reg = createDifflab({ plugins: [toyPlugin], builtins: false }).plugins;
    expect(() => reg.get('video')).toThrow("unknown modality 'video'; registered: toy-points");
  });
});

describe('architecture', () => {
  it('src/core never imports src/plugins or the composition root', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const name of readdirSync(dir)) {
        const path = join(dir, name);
        if (statSync(path).isDirectory()) walk(path);
        else if (path.endsWith('.ts')) {
          const text = readFileSync(path, 'utf8');
          for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) {
            const spec = m[1]!;
            if (/(^|\/)plugins(\/|$)/.test(spec) || /container\.js$/.test(spec)) offenders.push(`${path}: ${spec}`);
          }
        }
      }
    };
    walk('src/core');
    expect(offenders).toEqual([]);
  });
});
