import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../src/core/backend/select.js';
import { parseRunConfig } from '../src/core/config/load.js';
import { generate, loadModel, toDataSpace } from '../src/core/generate.js';
import { PluginRegistry } from '../src/core/plugin.js';
import { Rng } from '../src/core/random.js';
import { trainRun } from '../src/core/training/engine.js';
import { latestCheckpointDir, loadCheckpoint } from '../src/core/training/checkpoint.js';
import { buildVocabulary, createTextNetwork, textPlugin, tiktokenIds, type TextDataConfig, type TextTransformer, type TextVocabulary } from '../src/plugins/text/index.js';
import { expectWasmGradientsMatchCpu, perturbVariables } from './helpers/gradcheck.js';
import { expectNoTensorLeak, maxRelError } from './helpers/tensors.js';

beforeAll(async () => {
  await useBackend('wasm');
});

const vocab: TextVocabulary = buildVocabulary([tiktokenIds('the quick brown fox jumps over the lazy dog and runs away', 'gpt2')], 'gpt2');
const V = vocab.tokens.length + 2;
const L = 6;
const E = 16;

function build(over: Record<string, unknown> = {}, seed = 0): TextTransformer {
  return createTextNetwork({ width: 16, layers: 2, heads: 2, noise_embedding_dim: 8, ...over }, { exampleShape: [L, E], dataShape: [L], dataInfo: vocab, rng: new Rng(seed) });
}

function randomIds(b: number, seed: number): tf.Tensor2D {
  const rng = new Rng(seed);
  return tf.tensor2d(Array.from({ length: b * L }, () => rng.int(V)), [b, L], 'int32');
}

describe('text transformer', () => {
  it('maps [B, L, E] to [B, L, E]; both conditionings; parameter count of its definition', () => {
    for (const conditioning of ['adaln', 'add'] as const) {
      const net = build({ conditioning });
      const x = new Rng(1).normalTensor([3, L, E]);
      const y = net.apply(x, tf.tensor1d([0, 500, 1999]));
      expect(y.shape).toEqual([3, L, E]);
      expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
      const W = 16;
      const H = 64; // mlp_ratio 4
      const ln = conditioning === 'adaln' ? 0 : 2 * W; // adaLN blocks have no LayerNorm affine
      const block = ln * 2 + (W * 3 * W + 3 * W) + (W * W + W) + (W * H + H) + (H * W + W) + (conditioning === 'adaln' ? W * 4 * W + 4 * W : 0);
      const expected = V * E + V + (E * W + W) + L * W + (8 * W + W + W * W + W) + 2 * block + 2 * W + (W * E + E);
      expect(net.parameterCount()).toBe(expected);
      tf.dispose([x, y]);
      net.dispose();
    }
  });

  it('rounding: decodeLogLikelihood is the log-softmax of x0 EMB^T + b at the ids; decode is its argmax; project snaps to the nearest embedding', () => {
    const net = build();
    perturbVariables(net.variables, 2, 0.3);
    const ids = randomIds(2, 3);
    const x0 = tf.add(net.encode(ids), tf.mul(new Rng(4).normalTensor([2, L, E]), 0.5));
    const table = net.embedding.table.arraySync() as number[][];
    const bias = net.roundingBias.dataSync();
    const xs = x0.arraySync() as number[][][];
    const idv = ids.arraySync() as number[][];
    const ll = net.decodeLogLikelihood(x0, ids).dataSync();
    const decoded = net.decode(x0).arraySync() as number[][];
    const projected = net.project(x0).arraySync() as number[][][];
    for (let b = 0; b < 2; b++) {
      let rowLl = 0;
      for (let i = 0; i < L; i++) {
        const x = xs[b]![i]!;
        const logits = table.map((e, v) => e.reduce((s, ev, k) => s + ev * (x[k] as number), 0) + (bias[v] as number));
        const lse = Math.log(logits.reduce((s, l) => s + Math.exp(l - Math.max(...logits)), 0)) + Math.max(...logits);
        rowLl += (logits[idv[b]![i]!] as number) - lse;
        expect(decoded[b]![i]).toBe(logits.indexOf(Math.max(...logits)));
        const dist = table.map((e) => e.reduce((s, ev, k) => s + (ev - (x[k] as number)) ** 2, 0));
        const nearest = dist.indexOf(Math.min(...dist));
        expect(maxRelError(projected[b]![i]!, table[nearest]!)).toBe(0);
      }
      expect(ll[b]).toBeCloseTo(rowLl, 3);
    }
    tf.dispose([ids, x0]);
    net.dispose();
  });

  it('wasm and cpu agree: outputs and the gradient of every variable, denoiser and rounding head', async () => {
    const { wasm } = await expectWasmGradientsMatchCpu(() => {
      const net = build({}, 5);
      perturbVariables(net.variables, 6, 0.2);
      const rng = new Rng(7);
      const ids = randomIds(2, 8);
      const noise = rng.normalTensor([2, L, E]);
      const c = tf.tensor1d([3, 1200]) as tf.Tensor1D;
      const w = rng.normalTensor([2, L, E]);
      return {
        variables: net.variables,
        // The embedding enters through x0 = EMB(w) + noise, the rounding head through a log-likelihood term.
        forward: () =>
          tf.tidy(() => {
            const x = tf.add(net.encode(ids), noise);
            const y = net.apply(x, c);
            return tf.add(y, tf.mul(tf.reshape(net.decodeLogLikelihood(x, ids), [2, 1, 1]), 0.01));
          }),
        weight: w,
        dispose: () => {
          tf.dispose([ids, noise, c, w]);
          net.dispose();
        },
      };
    });
    expect(wasm.grads.some((g) => g.name.endsWith('embedding.weight'))).toBe(true);
    expect(wasm.grads.some((g) => g.name.endsWith('blocks.1.modulation.weight'))).toBe(true);
  });
});

/**
 * A tiny text run config (8-token windows, a 1-block transformer of width 16)
 * on `corpus`; `over` replaces or extends its sections.
 */
function tinyTextConfig(corpus: string, seed: number, over: { data?: object; model?: object; train: object; sample?: object }) {
  return parseRunConfig(
    {
      modality: 'text',
      seed,
      data: { path: corpus, seq_len: 8, embedding_dim: 16, ...over.data },
      model: { width: 16, layers: 1, heads: 2, noise_embedding_dim: 8, ...over.model },
      diffusion: { schedule: { type: 'sqrt', T: 2000 }, parametrization: { type: 'x0' }, objective: { noise: { type: 'uniform-time' }, weighting: { type: 'uniform' } } },
      train: over.train,
      ...(over.sample ? { sample: over.sample } : {}),
    },
    'inline.yaml',
    new PluginRegistry([textPlugin]),
  );
}

describe('training and sampling on wasm', () => {
  it('a few training steps (all loss terms) without tensor leaks, then unconditional and prefix-infilled samples as text', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-text-train-'));
    const corpus = join(dir, 'corpus.txt');
    writeFileSync(corpus, 'To be, or not to be, that is the question:\nWhether tis nobler in the mind to suffer\n'.repeat(20));
    const config = tinyTextConfig(corpus, 1, {
      train: { steps: 6, batch_size: 4, workers: 1, log_every: 1, checkpoint_every: 6, lr: 0.003 },
      sample: { sampler: 'ddpm', steps: 8, discretization: 'leading', clamp: true },
    });
    const counts: number[] = [];
    const losses: number[] = [];
    await trainRun({ config, plugin: textPlugin, outDir: join(dir, 'run'), baseDir: dir, log: () => {}, onStep: (m) => (counts.push(tf.memory().numTensors), losses.push(m.loss)) });
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(new Set(counts.slice(1)).size).toBe(1); // numTensors stable from step 2 on
    const ckpt = loadCheckpoint(latestCheckpointDir(join(dir, 'run'))!);
    expect(ckpt.meta.dataShape).toEqual([8]);
    const model = loadModel(textPlugin, config, { exampleShape: ckpt.meta.exampleShape, dataShape: ckpt.meta.dataShape!, dataInfo: ckpt.meta.dataInfo }, ckpt.ema!);
    const info = { exampleShape: model.exampleShape, dataShape: model.dataShape!, dataInfo: model.dataInfo };
    await expectNoTensorLeak(async () => {
      const known = textPlugin.knownFromPrompt!({ prefix: 'To be' }, { data: config.data as TextDataConfig, info, net: model.net });
      const r = generate(model, { n: 3, seed: 2, known });
      const ids = toDataSpace(model, r.x);
      // The prefix' embeddings are imposed exactly; what the rounding head reads there depends on training.
      const prefixLen = 2; // 'To', ' be'
      const xs = r.x.arraySync() as number[][][];
      const kv = known.values.arraySync() as number[][][];
      for (const row of xs) for (let i = 0; i < prefixLen; i++) expect(row[i]).toEqual(kv[0]![i]);
      const files = await textPlugin.writeSamples!(ids, join(dir, 'samples.png'), { data: config.data as TextDataConfig, info });
      expect(files).toEqual([join(dir, 'samples.txt')]);
      expect(readFileSync(files[0]!, 'utf8').match(/--- sample \d ---/g)).toHaveLength(3);
      // RePaint resampling keeps the prefix exact too, at U times the network evaluations.
      const rp = generate(model, { n: 3, seed: 2, known, resample: 3 });
      expect(rp.nfe).toBe(3 * r.nfe);
      expect(rp.sampler).toBe(`${r.sampler}+repaint(3)`);
      for (const row of rp.x.arraySync() as number[][][]) for (let i = 0; i < prefixLen; i++) expect(row[i]).toEqual(kv[0]![i]);
      tf.dispose([r.x, rp.x, ids, known.values, known.mask]);
    }, 'infilled sampling');
    expect(() => textPlugin.knownFromPrompt!({ prefix: 'To be or not to be that is the question' }, { data: config.data as TextDataConfig, info, net: model.net })).toThrow(/do not fit the model's window of 8 tokens/);
    model.dispose();
  }, 120_000);
  it('class-conditional text (data.label_field): trains with label dropout, samples a class with classifier-free guidance, classes change the sample', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-text-cfg-'));
    const corpus = join(dir, 'moods.jsonl');
    const lines = Array.from({ length: 24 }, (_, i) => JSON.stringify({ text: i % 2 ? 'the sea is wide and deep' : 'the hill is high and green', mood: i % 2 ? 'sea' : 'hill' }));
    writeFileSync(corpus, `${lines.join('\n')}\n`);
    const config = tinyTextConfig(corpus, 2, {
      data: { label_field: 'mood' },
      model: { class_conditional: true },
      train: { steps: 4, batch_size: 4, workers: 1, log_every: 1, checkpoint_every: 4, sample_every: 0, lr: 0.01, cond_dropout: 0.25 },
      sample: { sampler: 'ddpm', steps: 6, discretization: 'leading', clamp: false, guidance: 2 },
    });
    const losses: number[] = [];
    await trainRun({ config, plugin: textPlugin, outDir: join(dir, 'run'), baseDir: dir, log: () => {}, onStep: (m) => losses.push(m.loss) });
    expect(losses.every(Number.isFinite)).toBe(true);
    const ckpt = loadCheckpoint(latestCheckpointDir(join(dir, 'run'))!);
    expect(ckpt.meta.numClasses).toBe(2);
    expect((ckpt.meta.dataInfo as { classes: string[] }).classes).toEqual(['hill', 'sea']);
    const info = { exampleShape: ckpt.meta.exampleShape, numClasses: 2, dataShape: ckpt.meta.dataShape!, dataInfo: ckpt.meta.dataInfo };
    const model = loadModel(textPlugin, config, info, ckpt.state.weights);
    const [hill, sea] = await expectNoTensorLeak(async () => {
      const a = generate(model, { n: 2, seed: 5, classId: 0 });
      const b = generate(model, { n: 2, seed: 5, classId: 1 });
      expect(a.nfe).toBe(6);
      const out = [a.x.arraySync() as number[][][], b.x.arraySync() as number[][][]];
      tf.dispose([a.x, b.x]);
      return out;
    }, 'guided text sampling');
    // The same noise under the two classes: the label embedding moves the sample.
    const diff = Math.max(...hill!.flat(2).map((v, i) => Math.abs(v - sea!.flat(2)[i]!)));
    expect(diff).toBeGreaterThan(1e-4);
    expect(() => generate(model, { n: 1, seed: 1, classId: 2 })).toThrow(/0\.\.1, got 2/);
    model.dispose();
    // Without classes in the data, class_conditional is a one-line error.
    const plain = join(dir, 'plain.txt');
    writeFileSync(plain, 'the sea is wide and deep and the hill is high '.repeat(10));
    const bad = parseRunConfig({ ...config, data: { ...(config.data as TextDataConfig), path: plain, label_field: null } }, 'inline.yaml', new PluginRegistry([textPlugin]));
    await expect(trainRun({ config: bad, plugin: textPlugin, outDir: join(dir, 'bad'), baseDir: dir, log: () => {} })).rejects.toThrow(
      /model\.class_conditional needs classes in the data \(set data\.label_field on a JSON-lines corpus\)/,
    );
  }, 120_000);

  it('data-parallel training (2 wasm workers) gives the losses of in-process training, embedding, rounding and prior terms included', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'difflab-text-dp-'));
    const corpus = join(dir, 'corpus.txt');
    writeFileSync(corpus, 'Now is the winter of our discontent made glorious summer by this sun of York\n'.repeat(20));
    const lossesWith = async (workers: number): Promise<number[]> => {
      const config = tinyTextConfig(corpus, 3, { train: { steps: 4, batch_size: 6, workers, log_every: 1, checkpoint_every: 4, sample_every: 0, lr: 0.003 } });
      const losses: number[] = [];
      await trainRun({ config, plugin: textPlugin, outDir: join(dir, `run-${workers}`), baseDir: dir, log: () => {}, onStep: (m) => losses.push(m.loss) });
      return losses;
    };
    const local = await lossesWith(1);
    const parallel = await lossesWith(2);
    expect(parallel).toHaveLength(4);
    // Training moves: the losses are not all equal (equal-but-frozen would also match).
    expect(new Set(local.map((l) => l.toFixed(4))).size).toBeGreaterThan(1);
    parallel.forEach((l, i) => expect(l).toBeCloseTo(local[i]!, 4));
  }, 120_000);
});
