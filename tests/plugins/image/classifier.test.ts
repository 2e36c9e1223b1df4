import * as tf from '@tensorflow/tfjs';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useBackend } from '../../../src/core/backend/select.js';
import { writeSafetensors } from '../../../src/core/io/safetensors.js';
import { evaluateSamples } from '../../../src/core/metrics/evaluate.js';
import { extractFeatures } from '../../../src/core/metrics/extract.js';
import { LocalTrainer } from '../../../src/core/parallel/index.js';
import { Rng } from '../../../src/core/random.js';
import {
  DEFAULT_FASHION_CNN,
  FASHION_CLASSIFIER_RECORD,
  FASHION_CLASSIFIER_WEIGHTS,
  FashionClassifierExtractor,
  FashionCnn,
  classifierAccuracy,
  createFashionClassifierModel,
  fileSystemIO,
  floorsFromFeatures,
  loadExternalExtractor,
  loadFashionClassifier,
  noiseImages,
  openFashion,
  parseTrainClassifierArgs,
  preprocessImages,
  sidecarPath,
  type ClassifierRecord,
} from '../../../src/plugins/image/classifier/index.js';
import { expectNoTensorLeak, maxRelError } from '../../helpers/tensors.js';

const FASHION = fileURLToPath(new URL('../../../../shared/datasets/fashion-mnist', import.meta.url));
const hasFashion = existsSync(FASHION);
if (!hasFashion) console.warn(`SKIPPED real Fashion-MNIST classifier tests: ${FASHION} is absent`);

let tmp: string;
beforeAll(async () => {
  await useBackend('wasm');
  tmp = mkdtempSync(join(tmpdir(), 'difflab-classifier-'));
});
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function randomImages(n: number, seed: number): tf.Tensor4D {
  const rng = new Rng(seed);
  return tf.tensor4d(Float32Array.from({ length: n * 784 }, () => 2 * rng.uniform() - 1), [n, 28, 28, 1]);
}

describe('the committed classifier weights', () => {
  it('are small, load, and match their sidecar (hash, size, config)', () => {
    const bytes = statSync(FASHION_CLASSIFIER_WEIGHTS).size;
    expect(bytes).toBeLessThan(1 << 20);
    const record = JSON.parse(readFileSync(FASHION_CLASSIFIER_RECORD, 'utf8')) as ClassifierRecord;
    expect(record.bytes).toBe(bytes);
    const { extractor, record: loaded } = loadFashionClassifier();
    expect(loaded).toEqual(record);
    expect(extractor.id).toBe(`difflab-fashion-cnn@${record.sha256.slice(0, 12)}`);
    expect(extractor.featureDim).toBe(64);
    expect(extractor.numClasses).toBe(10);
    expect(extractor.net.store.parameterCount()).toBe(record.parameters);
    expect(record.testAccuracy).toBeGreaterThanOrEqual(0.9);
    expect(record.testExamples).toBe(10000);
    extractor.dispose();
  });

  it.skipIf(!hasFashion)('reach their recorded accuracy on the full Fashion-MNIST test set (10000 images)', async () => {
    const { extractor, record } = loadFashionClassifier();
    const test = await openFashion(FASHION, 'test');
    const t0 = performance.now();
    const r = await expectNoTensorLeak(() => classifierAccuracy(extractor.net, test), 'classifierAccuracy');
    const seconds = (performance.now() - t0) / 1000;
    console.log(`committed classifier: test accuracy ${(100 * r.accuracy).toFixed(2)} % on ${r.examples} images in ${seconds.toFixed(1)} s (recorded ${(100 * record!.testAccuracy).toFixed(2)} %)`);
    expect(r.examples).toBe(10000);
    // Same weights, same backend: the same predictions; allow 5 images for float differences across machines.
    expect(Math.abs(r.accuracy - record!.testAccuracy)).toBeLessThanOrEqual(5e-4);
    expect(r.accuracy).toBeGreaterThanOrEqual(0.9);
    expect(r.loss).toBeCloseTo(record!.testLoss, 3);
    // Every class is learned (no class below 60 % recall; shirts are the hardest).
    r.confusion.forEach((row) => expect(row[r.confusion.indexOf(row)]! / 1000).toBeGreaterThan(0.6));
    extractor.dispose();
  });

  it.skipIf(!hasFashion)('floors: train-vs-test FD/KID are tiny next to noise-vs-train; real IS near the class count; recorded floors reproduce', async () => {
    const { extractor, record } = loadFashionClassifier();
    const train = await openFashion(FASHION, 'train');
    const test = await openFashion(FASHION, 'test');
    const [trainF, testF, noiseF] = await expectNoTensorLeak(
      async () => [
        await extractFeatures(extractor, { source: train, indices: Array.from({ length: 10000 }, (_, i) => i) }),
        await extractFeatures(extractor, { source: test }),
        await extractFeatures(extractor, noiseImages(2000, 1234)),
      ],
      'feature extraction',
    );
    const floors = await floorsFromFeatures(trainF, testF, noiseF, 20);
    console.log(`floors (10000 train images): ${JSON.stringify(floors)}`);
    expect(floors.fd.testVsTrain).toBeGreaterThan(0);
    expect(floors.fd.testVsTrain).toBeLessThan(0.01 * floors.fd.noiseVsTrain);
    expect(Math.abs(floors.kid.testVsTrain.mean)).toBeLessThan(3 * floors.kid.testVsTrain.std + 1e-9);
    expect(floors.kid.noiseVsTrain.mean).toBeGreaterThan(10 * floors.kid.noiseVsTrain.std);
    // 10 balanced classes, ~90 % accuracy: IS of real data is near (below) 10; noise images collapse to few classes.
    expect(floors.is.test.mean).toBeGreaterThan(7);
    expect(floors.is.test.mean).toBeLessThan(10);
    expect(floors.is.noise.mean).toBeLessThan(0.5 * floors.is.test.mean);
    expect(floors.am.test).toBeLessThan(floors.am.noise);
    // The test split is the same 10000 images as in the sidecar: its IS, mIS reproduce exactly (same weights, same backend).
    expect(floors.is.test.mean).toBeCloseTo(record!.floors.is.test.mean, 6);
    expect(floors.mis.test / record!.floors.mis.test).toBeCloseTo(1, 6);
    // And the recorded full-train FD floor is of the same size as this 10000-image one.
    expect(record!.floors.fd.testVsTrain).toBeLessThan(2 * floors.fd.testVsTrain);

    // evaluateSamples on noise "samples" reports each value beside its floor.
    const report = await evaluateSamples(extractor, noiseF, { real: trainF, heldOut: testF }, { kid: { subsets: 10 } });
    expect(report.counts).toEqual({ samples: 2000, real: 10000, floor: 2000 });
    expect(report.fd.value).toBeCloseTo(floors.fd.noiseVsTrain, 6);
    expect(report.fd.floor).toBeLessThan(0.01 * report.fd.value);
    expect(report.is!.floor).toBeGreaterThan(2 * report.is!.value);
    extractor.dispose();
  });
});

describe('FashionCnn and its FeatureExtractor', () => {
  it('features and logits: shapes, one-pass equals separate passes, no leaks over a loop', async () => {
    const net = new FashionCnn(DEFAULT_FASHION_CNN, 3, 'cnn_test');
    const ex = new FashionClassifierExtractor(net);
    const x = randomImages(6, 1);
    await expectNoTensorLeak(async () => {
      for (let i = 0; i < 5; i++) {
        const both = ex.featuresAndLogits(x);
        const f = ex.features(x);
        const l = ex.logits(x);
        expect(both.features.shape).toEqual([6, 64]);
        expect(both.logits.shape).toEqual([6, 10]);
        expect(maxRelError(await both.features.data(), await f.data())).toBe(0);
        expect(maxRelError(await both.logits.data(), await l.data())).toBe(0);
        // Features come after a ReLU.
        expect(Math.min(...(await f.data()))).toBeGreaterThanOrEqual(0);
        tf.dispose([both.features, both.logits, f, l]);
      }
    }, 'extractor loop');
    await expectNoTensorLeak(() => extractFeatures(ex, x, { batchSize: 4 }), 'extractFeatures');
    expect(() => ex.features(tf.zeros([1, 32, 32, 1]))).toThrow(/expected input \[B, 28, 28, 1\]/);
    x.dispose();
    ex.dispose();
  });

  it('save -> load reproduces the network; wrong files are rejected with the file named', async () => {
    const net = new FashionCnn(DEFAULT_FASHION_CNN, 5, 'cnn_save');
    const file = join(tmp, 'cnn.safetensors');
    await net.save(file);
    const { net: back } = FashionCnn.load(file, 'cnn_back');
    const x = randomImages(3, 2);
    const [a, b] = [net.logits(x), back.logits(x)];
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    tf.dispose([a, b, x]);
    net.dispose();
    back.dispose();
    const bad = join(tmp, 'bad.safetensors');
    writeSafetensors(bad, { 'conv1.weight': { shape: [3, 3, 1, 16], data: new Float32Array(144) } });
    expect(() => FashionCnn.load(bad)).toThrow(/bad\.safetensors: no tensor 'conv1\.bias'/);
    // A sidecar that describes other weights is refused.
    writeFileSync(sidecarPath(file), JSON.stringify({ sha256: '0'.repeat(64) }));
    expect(() => loadFashionClassifier(file)).toThrow(/describes other weights/);
  });

  it('model factory: loss is the mean cross-entropy; dropout masks do not depend on how the batch is split; a few steps overfit a batch', async () => {
    const model = createFashionClassifierModel({ seed: 1, config: { ...DEFAULT_FASHION_CNN, dropout: 0 } });
    const x = randomImages(8, 3);
    const labels = tf.tensor1d([0, 1, 2, 3, 4, 5, 6, 7], 'int32');
    const loss = model.loss({ x, labels }, { step: 0, rowOffset: 0, globalBatchSize: 8, rank: 0, worldSize: 1 });
    // Independent computation: -mean log softmax(z)_label.
    const net = new FashionCnn({ ...DEFAULT_FASHION_CNN, dropout: 0 }, 1, 'cnn_ref');
    const zt = net.logits(x);
    const z = await zt.array();
    zt.dispose();
    const ce = z.reduce((s, row, i) => {
      const m = Math.max(...row);
      return s + (Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0)) + m - row[i]!);
    }, 0) / 8;
    expect((await loss.data())[0]).toBeCloseTo(ce, 5);
    tf.dispose([loss]);
    model.dispose?.();
    net.dispose();

    const drop = new FashionCnn(DEFAULT_FASHION_CNN, 0, 'cnn_drop');
    const whole = await drop.dropoutMask(6, 9, 4, 0)!.array();
    const tail = await drop.dropoutMask(2, 9, 4, 4)!.array();
    expect(tail).toEqual(whole.slice(4));
    const keep = whole.flat().filter((v) => v > 0);
    expect(keep.every((v) => Math.abs(v - 1 / 0.9) < 1e-6)).toBe(true);
    drop.dispose();

    const trainer = await LocalTrainer.create({
      factory: { module: fileURLToPath(new URL('../../../src/plugins/image/classifier/factory.ts', import.meta.url)), exportName: 'createFashionClassifierModel', options: { seed: 2 } },
      optimizer: { kind: 'adam', learningRate: 3e-3 },
    });
    const losses: number[] = [];
    for (let i = 0; i < 25; i++) losses.push((await trainer.step({ x, labels })).loss);
    expect(losses[24]!).toBeLessThan(0.25 * losses[0]!);
    await trainer.dispose();
    tf.dispose([x, labels]);
  });

  it('parseTrainClassifierArgs: defaults reproduce the committed run; flags and errors', () => {
    const d = { dataDir: '/data', out: '/x/c.safetensors' };
    const o = parseTrainClassifierArgs([], d);
    const record = JSON.parse(readFileSync(FASHION_CLASSIFIER_RECORD, 'utf8')) as ClassifierRecord;
    expect([o.epochs, o.batchSize, o.lr, o.weightDecay, o.seed, o.randomFlip]).toEqual([
      record.epochs,
      record.batchSize,
      record.optimizer.lr,
      record.optimizer.weightDecay,
      record.seed,
      record.randomFlip,
    ]);
    expect(o.config).toEqual(record.config);
    const p = parseTrainClassifierArgs(['--epochs', '2', '--workers', '1', '--flip', '--lr', '0.01'], d);
    expect([p.epochs, p.workers, p.randomFlip, p.lr]).toEqual([2, 1, true, 0.01]);
    expect(() => parseTrainClassifierArgs(['--epochs', 'x'], d)).toThrow(/--epochs needs a non-negative integer/);
    expect(() => parseTrainClassifierArgs(['--bogus'], d)).toThrow(/unknown argument '--bogus'/);
    expect(() => parseTrainClassifierArgs(['--out', 'a.bin'], d)).toThrow(/\.safetensors/);
  });
});

/** A tfjs graph model (GraphDef JSON + weights.bin) written by hand: conv 3x3 (3->4, SAME) -> ReLU -> mean over H, W -> matMul [4, 5]. */
function writeGraphModel(dir: string, kernel: Float32Array, dense: Float32Array, size: number): void {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const dims = (...d: number[]) => ({ dim: d.map((n) => ({ size: String(n) })) });
  const constNode = (name: string, dtype: string, shape: number[]) => ({
    name,
    op: 'Const',
    attr: { dtype: { type: dtype }, value: { tensor: { dtype, tensorShape: dims(...shape) } } },
  });
  const float = { type: 'DT_FLOAT' };
  const topology = {
    node: [
      { name: 'images', op: 'Placeholder', attr: { dtype: float, shape: { shape: dims(-1, size, size, 3) } } },
      constNode('conv/kernel', 'DT_FLOAT', [3, 3, 3, 4]),
      {
        name: 'conv',
        op: 'Conv2D',
        input: ['images', 'conv/kernel'],
        attr: {
          T: float,
          strides: { list: { i: ['1', '1', '1', '1'] } },
          padding: { s: b64('SAME') },
          data_format: { s: b64('NHWC') },
          dilations: { list: { i: ['1', '1', '1', '1'] } },
        },
      },
      { name: 'relu', op: 'Relu', input: ['conv'], attr: { T: float } },
      constNode('pool/axes', 'DT_INT32', [2]),
      { name: 'pool', op: 'Mean', input: ['relu', 'pool/axes'], attr: { T: float, Tidx: { type: 'DT_INT32' }, keep_dims: { b: false } } },
      constNode('dense/kernel', 'DT_FLOAT', [4, 5]),
      { name: 'logits', op: 'MatMul', input: ['pool', 'dense/kernel'], attr: { T: float, transpose_a: { b: false }, transpose_b: { b: false } } },
    ],
    versions: { producer: 1482 },
  };
  const weights = [
    { name: 'conv/kernel', shape: [3, 3, 3, 4], dtype: 'float32' },
    { name: 'pool/axes', shape: [2], dtype: 'int32' },
    { name: 'dense/kernel', shape: [4, 5], dtype: 'float32' },
  ];
  const bin = Buffer.concat([Buffer.from(kernel.buffer), Buffer.from(new Int32Array([1, 2]).buffer), Buffer.from(dense.buffer)]);
  writeFileSync(join(dir, 'weights.bin'), bin);
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({ format: 'graph-model', generatedBy: 'difflab test', convertedBy: 'hand-written', modelTopology: topology, weightsManifest: [{ paths: ['weights.bin'], weights }] }),
  );
}

describe('external networks (e.g. a tfjs Inception-v3 for standard FID)', () => {
  it('preprocessImages: grey -> 3 channels, legacy bilinear resize by hand, range mapping', async () => {
    // 2x2 -> 4x4 with TF1's resize_bilinear (no half-pixel centres): source coordinate = 0.5 * output coordinate.
    const x = tf.tensor4d([-1, 0, 0.5, 1], [1, 2, 2, 1]);
    const y = preprocessImages(x, { size: 4, channels: 3, range: [-1, 1], halfPixelCenters: false });
    expect(y.shape).toEqual([1, 4, 4, 3]);
    const v = (await y.array())[0]!;
    const row0 = [-1, -0.5, 0, 0];
    const row1 = [-0.25, 0.125, 0.5, 0.5];
    const row2 = [0.5, 0.75, 1, 1];
    [row0, row1, row2, row2].forEach((row, i) => row.forEach((want, j) => expect(v[i]![j]).toEqual([want, want, want].map((w) => expect.closeTo(w, 6)))));
    // [-1, 1] -> [0, 1] (TF-Hub convention); RGB -> grey by channel mean.
    const z = preprocessImages(tf.tensor4d([-1, 1, 0], [1, 1, 1, 3]), { size: 1, channels: 1, range: [0, 1], halfPixelCenters: true });
    expect(Array.from(await z.data())).toEqual([0.5]);
    expect(() => preprocessImages(tf.zeros([2, 4, 4]), { size: 4, channels: 3, range: [-1, 1], halfPixelCenters: false })).toThrow(/\[B, H, W, 1 or 3\]/);
    tf.dispose([x, y, z]);
  });

  it('loadExternalExtractor runs a graph model from disk (file:// URL): pooled features and logits equal the same ops run directly', async () => {
    const dir = join(tmp, 'graph');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const rng = new Rng(8);
    const kernel = rng.normalArray(3 * 3 * 3 * 4);
    const dense = rng.normalArray(4 * 5);
    writeGraphModel(dir, kernel, dense, 16);
    const ex = await loadExternalExtractor({ model: `file://${dir}/model.json`, featureNode: 'relu', logitsNode: 'logits', preprocessing: { size: 16 } });
    expect([ex.featureDim, ex.numClasses]).toEqual([4, 5]);
    expect(ex.id).toBe(`external:${dir}/model.json`);
    const images = randomImages(3, 9);
    const out = ex.featuresAndLogits(images);
    const want = tf.tidy(() => {
      const p = tf.image.resizeBilinear(tf.tile(images, [1, 1, 1, 3]), [16, 16]);
      const f = tf.mean(tf.relu(tf.conv2d(p, tf.tensor4d(kernel, [3, 3, 3, 4]), 1, 'same')), [1, 2]) as tf.Tensor2D;
      return [f, tf.matMul(f, tf.tensor2d(dense, [4, 5]))];
    });
    expect(maxRelError(await out.features.data(), await want[0]!.data())).toBeLessThan(1e-5);
    expect(maxRelError(await out.logits.data(), await want[1]!.data())).toBeLessThan(1e-5);
    tf.dispose([out.features, out.logits, ...want]);
    const set = await expectNoTensorLeak(() => extractFeatures(ex, images, { batchSize: 2 }), 'graph model extraction');
    expect(set.logProbs).toHaveLength(15);
    images.dispose();
    ex.dispose();
    await expect(loadExternalExtractor({ model: join(tmp, 'missing') })).rejects.toThrow(/missing\/model\.json: cannot read/);
  });

  it('a layers model saved with fileSystemIO loads back; features from the layer before the output', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, activation: 'relu' }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 6, activation: 'relu', name: 'feat' }),
        tf.layers.dense({ units: 3, name: 'out' }),
      ],
    });
    const dir = join(tmp, 'layers');
    await model.save(fileSystemIO(dir));
    const ex = await loadExternalExtractor({ model: dir, preprocessing: { size: 8 } });
    expect([ex.featureDim, ex.numClasses]).toEqual([6, 3]);
    const images = randomImages(2, 10);
    const pre = preprocessImages(images, ex.preprocessing);
    const featModel = tf.model({ inputs: model.inputs, outputs: model.getLayer('feat').output as tf.SymbolicTensor });
    const wantF = featModel.predict(pre) as tf.Tensor;
    const wantL = model.predict(pre) as tf.Tensor;
    const got = ex.featuresAndLogits(images);
    expect(maxRelError(await got.features.data(), await wantF.data())).toBeLessThan(1e-6);
    expect(maxRelError(await got.logits.data(), await wantL.data())).toBeLessThan(1e-6);
    tf.dispose([images, pre, wantF, wantL, got.features, got.logits]);
    ex.dispose();
    model.dispose();
  });
});
