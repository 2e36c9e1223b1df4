/**
 * Reproduces src/plugins/audio/classifier/digit-classifier.safetensors and
 * its JSON sidecar: `npm run train:digit-classifier` (flags: see
 * parseTrainDigitClassifierArgs in src/plugins/audio/classifier/train.ts).
 * Data: FSDD in ../shared/datasets/fsdd/recordings (`difflab datasets fetch
 * fsdd` gets it), or --data <recordings folder>. Progress goes to stderr.
 */
import { fileURLToPath } from 'node:url';
import { parseTrainDigitClassifierArgs, trainDigitClassifier } from '../src/plugins/audio/classifier/train.js';

const defaults = {
  dataDir: fileURLToPath(new URL('../../shared/datasets/fsdd/recordings', import.meta.url)),
  out: fileURLToPath(new URL('../src/plugins/audio/classifier/digit-classifier.safetensors', import.meta.url)),
};

try {
  const options = parseTrainDigitClassifierArgs(process.argv.slice(2), defaults);
  const record = await trainDigitClassifier({ ...options, log: (line) => process.stderr.write(`${line}\n`) });
  console.log(
    `wrote ${options.out} (${record.bytes} bytes, ${record.parameters} parameters): test accuracy ${(100 * record.testAccuracy).toFixed(2)} % ` +
      `(${record.testExamples} clips), ${record.seconds} s`,
  );
} catch (err) {
  console.error(`train:digit-classifier: ${(err as Error).message}`);
  process.exitCode = 1;
}
