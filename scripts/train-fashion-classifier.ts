/**
 * Reproduces src/plugins/image/classifier/fashion-classifier.safetensors and
 * its JSON sidecar: `npm run train:classifier` (flags: see
 * parseTrainClassifierArgs in src/plugins/image/classifier/train.ts).
 */
import { fileURLToPath } from 'node:url';
import { parseTrainClassifierArgs, trainFashionClassifier } from '../src/plugins/image/classifier/train.js';

const defaults = {
  dataDir: fileURLToPath(new URL('../../shared/datasets/fashion-mnist', import.meta.url)),
  out: fileURLToPath(new URL('../src/plugins/image/classifier/fashion-classifier.safetensors', import.meta.url)),
};

try {
  const options = parseTrainClassifierArgs(process.argv.slice(2), defaults);
  const record = await trainFashionClassifier({ ...options, log: (line) => console.log(line) });
  console.log(`wrote ${options.out} (${record.bytes} bytes, ${record.parameters} parameters): test accuracy ${(100 * record.testAccuracy).toFixed(2)} %`);
} catch (err) {
  console.error(`train:classifier: ${(err as Error).message}`);
  process.exitCode = 1;
}
