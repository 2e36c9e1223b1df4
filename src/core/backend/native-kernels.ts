import * as tf from '@tensorflow/tfjs';

/**
 * Numeric and explicit convolution padding on native TensorFlow.
 *
 * tfjs-node's Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter accept only
 * 'same' and 'valid' ("TF Backend supports only 'valid' and 'same' padding
 * while padding was NUMBER"), but difflab's networks use numeric padding
 * (the U-Net's strided down-sampling conv, padding 1). These wrappers, for the
 * 'tensorflow' backend only, pad (or crop) the input explicitly so that a
 * 'valid' convolution gives exactly tfjs's output shape for the requested
 * padding and rounding, and hand every 'same'/'valid' call to tfjs-node's
 * own kernel unchanged. NHWC only (NCHW keeps tfjs-node's error).
 */

const NATIVE = 'tensorflow';

type Pads = readonly [top: number, bottom: number, left: number, right: number];

/** Pads making a 'valid' conv of the padded input produce this conv's output shape (bottom/right may be negative: crop). */
function validPads(info: tf.backend_util.Conv2DInfo): Pads {
  const { padInfo, inHeight, inWidth, outHeight, outWidth, strideHeight, strideWidth, effectiveFilterHeight, effectiveFilterWidth } = info;
  return [
    padInfo.top,
    (outHeight - 1) * strideHeight + effectiveFilterHeight - inHeight - padInfo.top,
    padInfo.left,
    (outWidth - 1) * strideWidth + effectiveFilterWidth - inWidth - padInfo.left,
  ];
}

type Info = tf.TensorInfo;
type Args = Parameters<tf.KernelFunc>[0];
interface Disposer {
  disposeData(dataId: object): boolean;
}

const original = new Map<string, tf.KernelFunc>();

/** tfjs-node's own kernel for `name` (the one these wrappers replaced, or any other). */
function call(name: string, backend: unknown, inputs: Record<string, Info>, attrs: object): Info {
  const f = original.get(name) ?? tf.getKernel(name, NATIVE)?.kernelFunc;
  if (!f) throw new Error(`native kernels: tfjs-node has no ${name} kernel`);
  const out = f({ inputs, backend: backend as tf.KernelBackend, attrs: attrs as tf.NamedAttrMap });
  if (Array.isArray(out)) throw new Error(`native kernels: ${name} returned several outputs`);
  return out as Info;
}

function release(backend: unknown, ...infos: Info[]): void {
  for (const i of infos) (backend as Disposer).disposeData(i.dataId);
}

/** x [B, H, W, C] padded with zeros by `pads` (negative bottom/right crop); a new tensor the caller releases. */
function padOrCrop(backend: unknown, x: Info, [t, b, l, r]: Pads): Info {
  const [n, h, w, c] = x.shape as [number, number, number, number];
  const padded = call(tf.PadV2, backend, { x }, { paddings: [[0, 0], [t, Math.max(b, 0)], [l, Math.max(r, 0)], [0, 0]], constantValue: 0 });
  if (b >= 0 && r >= 0) return padded;
  try {
    return call(tf.Slice, backend, { x: padded }, { begin: [0, 0, 0, 0], size: [n, t + h + b, l + w + r, c] });
  } finally {
    release(backend, padded);
  }
}

/** Numeric (even 0, whose rounding can differ from TensorFlow's 'valid') and explicit padding, NHWC. */
function rewritten(pad: unknown, dataFormat: string | undefined): boolean {
  return dataFormat !== 'NCHW' && typeof pad !== 'string';
}

/** Runs `name` with 'valid' padding on x padded (or cropped) by `pads`. */
function onPadded(name: string, args: Args, xKey: string, pads: Pads): Info {
  const x = args.inputs[xKey] as Info;
  const xp = padOrCrop(args.backend, x, pads);
  try {
    return call(name, args.backend, { ...(args.inputs as Record<string, Info>), [xKey]: xp }, { ...args.attrs, pad: 'valid', dimRoundingMode: undefined });
  } finally {
    release(args.backend, xp);
  }
}

const conv2D: tf.KernelFunc = (args) => {
  const { x, filter } = args.inputs as { x: Info; filter: Info };
  const a = args.attrs as unknown as tf.Conv2DAttrs;
  const info = tf.backend_util.computeConv2DInfo(x.shape as Shape4, filter.shape as Shape4, a.strides, a.dilations, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (!rewritten(a.pad, a.dataFormat)) return call(tf.Conv2D, args.backend, args.inputs as Record<string, Info>, a);
  return onPadded(tf.Conv2D, args, 'x', validPads(info));
};

const conv2DBackpropFilter: tf.KernelFunc = (args) => {
  const { x } = args.inputs as { x: Info };
  const a = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const info = tf.backend_util.computeConv2DInfo(x.shape as Shape4, a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (!rewritten(a.pad, a.dataFormat)) return call(tf.Conv2DBackpropFilter, args.backend, args.inputs as Record<string, Info>, a);
  return onPadded(tf.Conv2DBackpropFilter, args, 'x', validPads(info));
};

const conv2DBackpropInput: tf.KernelFunc = (args) => {
  const { dy, filter } = args.inputs as { dy: Info; filter: Info };
  const a = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const shape = a.inputShape as Shape4;
  const info = tf.backend_util.computeConv2DInfo(shape, filter.shape as Shape4, a.strides, 1, a.pad, a.dimRoundingMode, false, 'channelsLast');
  if (!rewritten(a.pad, a.dataFormat)) return call(tf.Conv2DBackpropInput, args.backend, { dy, filter }, a);
  // The gradient on the padded (or cropped) input, then the rows and columns of the real input; cropped ones get zeros.
  const [t, b, l, r] = validPads(info);
  const [n, h, w, c] = shape;
  const hp = t + h + b;
  const wp = l + w + r;
  const dxp = call(tf.Conv2DBackpropInput, args.backend, { dy, filter }, { ...a, pad: 'valid', dimRoundingMode: undefined, inputShape: [n, hp, wp, c] });
  const keepH = Math.min(h, hp - t);
  const keepW = Math.min(w, wp - l);
  let inner: Info;
  try {
    inner = call(tf.Slice, args.backend, { x: dxp }, { begin: [0, t, l, 0], size: [n, keepH, keepW, c] });
  } finally {
    release(args.backend, dxp);
  }
  if (keepH === h && keepW === w) return inner;
  try {
    return call(tf.PadV2, args.backend, { x: inner }, { paddings: [[0, 0], [0, h - keepH], [0, w - keepW], [0, 0]], constantValue: 0 });
  } finally {
    release(args.backend, inner);
  }
};

type Shape4 = [number, number, number, number];

const WRAPPERS: ReadonlyArray<readonly [string, tf.KernelFunc]> = [
  [tf.Conv2D, conv2D],
  [tf.Conv2DBackpropFilter, conv2DBackpropFilter],
  [tf.Conv2DBackpropInput, conv2DBackpropInput],
];

/**
 * Installs the wrappers on the 'tensorflow' backend (idempotent); returns the kernel names.
 * Call after tfjs-node has registered its kernels.
 */
export function registerNativeKernels(): string[] {
  for (const [name, func] of WRAPPERS) {
    const existing = tf.getKernel(name, NATIVE);
    if (!existing) throw new Error(`registerNativeKernels: tfjs-node registered no ${name} kernel`);
    if (existing.kernelFunc === func) continue;
    original.set(name, existing.kernelFunc);
    tf.unregisterKernel(name, NATIVE);
    tf.registerKernel({ ...existing, kernelFunc: func });
  }
  return WRAPPERS.map(([name]) => name);
}
