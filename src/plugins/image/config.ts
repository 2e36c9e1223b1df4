import { z } from 'zod';

/**
 * The schema of the image plugin's `data` section: a discriminated union on
 * `format` (idx | folder | cifar10). Every object is strict (unknown keys are
 * errors) and keys are snake_case. A section without `format` is an IDX
 * section, so `data: {}` means Fashion-MNIST from `../shared/datasets/fashion-mnist`.
 *
 * Paths: an absolute path is used as is. A relative path is resolved against
 * the current working directory when something exists there, otherwise
 * against the folder of the config file (`DataContext.baseDir`). See
 * `resolveDataPath` in `data/paths.ts`.
 */

const channels = z.union([z.literal(1), z.literal(3)], { error: 'channels must be 1 or 3' });
const size = z.int().min(1).max(4096);
const limit = z.int().min(1).nullable().default(null);
const path = z.string().min(1);
const optionalPath = path.nullable().default(null);

/** Options every format shares. */
const common = {
  /** Mirror each example left-right with probability 1/2 in `batch()` (seeded by the batch rng). */
  random_flip: z.boolean().default(false),
  /** Keep only the first N examples (tests, demos). */
  limit,
  /**
   * Skip unreadable files (counted, logged once) instead of failing on the
   * first one: image files for `folder`, batch files for `cifar10`. IDX
   * images and labels are one pair of files, so a bad IDX file always fails.
   */
  skip_bad_files: z.boolean().default(false),
};

/** MNIST / Fashion-MNIST IDX files (gzip or raw, detected by magic bytes). */
export const idxDataSchema = z
  .strictObject({
    format: z.literal('idx'),
    /** Folder holding `train-images-idx3-ubyte(.gz)`, `t10k-labels-idx1-ubyte(.gz)` and so on. */
    path: path.default('../shared/datasets/fashion-mnist'),
    /** Explicit files; when a split's pair is set it is used instead of the folder's standard names. */
    train_images: optionalPath,
    train_labels: optionalPath,
    test_images: optionalPath,
    test_labels: optionalPath,
    /** Output side length (square); resampled when it differs from the files' size. */
    size: size.default(28),
    channels: channels.default(1),
    ...common,
  })
  .refine((c) => (c.train_images === null) === (c.train_labels === null), {
    message: 'train_images and train_labels must be set together',
    path: ['train_labels'],
  })
  .refine((c) => (c.test_images === null) === (c.test_labels === null), {
    message: 'test_images and test_labels must be set together',
    path: ['test_labels'],
  });

/** A folder of PNG/JPEG files; labels from sorted sub-folder names. */
export const folderDataSchema = z.strictObject({
  format: z.literal('folder'),
  /** Root folder: one sub-folder per class, or images directly inside (unlabelled). */
  path,
  /** Root folder of the test split; when null the test split reads `path`. */
  test_path: optionalPath,
  size: size.default(64),
  channels: channels.default(3),
  /** How an image is brought to size x size: crop the centre (cover), letterbox (contain), or stretch (fill). */
  fit: z.enum(['cover', 'contain', 'fill']).default('cover'),
  ...common,
});

/** The CIFAR-10 binary version (`data_batch_1..5.bin`, `test_batch.bin`). */
export const cifar10DataSchema = z.strictObject({
  format: z.literal('cifar10'),
  /** The `cifar-10-batches-bin` folder, or a folder containing it. */
  path,
  size: size.default(32),
  channels: channels.default(3),
  ...common,
});

const union = z.discriminatedUnion('format', [idxDataSchema, folderDataSchema, cifar10DataSchema], {
  error: (issue) =>
    issue.code === 'invalid_union' ? "format must be one of 'idx', 'folder', 'cifar10'" : undefined,
});

export const imageDataSchema = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !('format' in v) ? { ...v, format: 'idx' } : v),
  union,
);

export type IdxDataConfig = z.infer<typeof idxDataSchema>;
export type FolderDataConfig = z.infer<typeof folderDataSchema>;
export type Cifar10DataConfig = z.infer<typeof cifar10DataSchema>;
export type ImageDataConfig = z.infer<typeof union>;
export type ImageFit = FolderDataConfig['fit'];
