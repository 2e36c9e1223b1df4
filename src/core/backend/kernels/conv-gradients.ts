import * as tf from '@tensorflow/tfjs';
import { pair } from './util.js';

/**
 * Gradients of Conv2D and DepthwiseConv2dNative that also handle dilations
 * (tfjs 4.22's own gradient functions assert dilation 1, so dilated conv1d /
 * conv2d, e.g. DiffWave's dilated convolutions, could not be trained on any
 * backend). Gradient functions are global, not per backend:
 *  - dilation 1: the same kernels and attributes as tfjs's own gradients
 *    (plus dimRoundingMode, which tfjs drops for Conv2D);
 *  - dilation > 1 on wasm with difflab's kernels: the kernels get a
 *    `dilations` attribute and do it in one fast conv;
 *  - dilation > 1 elsewhere: the undilated kernels applied to the explicitly
 *    zero-inserted filter (exact, since a dilated conv IS a conv with that
 *    filter), the filter gradient then keeps every dilation-th tap.
 */

let wasmKernelsHandleDilation: () => boolean = () => false;

/** Tells the gradients when the active backend's kernels take `dilations`. */
export function setDilationAwareBackendCheck(check: () => boolean): void {
  wasmKernelsHandleDilation = check;
}

/** [KH, KW, a, b] -> [(KH-1)*dh+1, (KW-1)*dw+1, a, b], taps spread with zeros between. */
export function zeroInsertFilter(filter: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  const [kh, kw, a, b] = filter.shape;
  return tf.tidy(() => {
    const spread = tf.pad(tf.reshape(filter, [kh, 1, kw, 1, a * b]), [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0]]);
    return tf.slice(tf.reshape(spread, [kh * dh, kw * dw, a, b]), [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b]) as tf.Tensor4D;
  });
}

function everyNthTap(grad: tf.Tensor4D, dh: number, dw: number): tf.Tensor4D {
  return tf.stridedSlice(grad, [0, 0, 0, 0], grad.shape, [dh, dw, 1, 1]) as tf.Tensor4D;
}

function run<T extends tf.Tensor>(kernel: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown>): T {
  return tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap) as T;
}

export const conv2DGradConfig: tf.GradConfig = {
  kernelName: tf.Conv2D,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const dy4 = dy as tf.Tensor4D;
    const { strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as tf.Conv2DAttrs;
    const [dh, dw] = pair((attrs as unknown as tf.Conv2DAttrs).dilations);
    const common = { strides, pad, dataFormat, dimRoundingMode };
    if ((dh === 1 && dw === 1) || wasmKernelsHandleDilation()) {
      const dil = dh === 1 && dw === 1 ? {} : { dilations: [dh, dw] };
      return {
        x: () => run(tf.Conv2DBackpropInput, { dy: dy4, filter }, { ...common, ...dil, inputShape: x.shape }),
        filter: () => run(tf.Conv2DBackpropFilter, { x, dy: dy4 }, { ...common, ...dil, filterShape: filter.shape }),
      };
    }
    return {
      x: () =>
        run(tf.Conv2DBackpropInput, { dy: dy4, filter: zeroInsertFilter(filter, dh, dw) }, { ...common, inputShape: x.shape }),
      filter: () => {
        const [kh, kw, ci, co] = filter.shape;
        const filterShape = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, ci, co];
        return everyNthTap(run(tf.Conv2DBackpropFilter, { x, dy: dy4 }, { ...common, filterShape }), dh, dw);
      },
    };
  },
};

export const depthwiseConv2dNativeGradConfig: tf.GradConfig = {
  kernelName: tf.DepthwiseConv2dNative,
  inputsToSave: ['x', 'filter'],
  gradFunc: (dy, saved, attrs) => {
    const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
    const dy4 = dy as tf.Tensor4D;
    const { strides, pad, dimRoundingMode } = attrs as unknown as tf.DepthwiseConv2dNativeAttrs;
    const [dh, dw] = pair((attrs as unknown as tf.DepthwiseConv2dNativeAttrs).dilations);
    const common = { strides, pad, dimRoundingMode };
    if ((dh === 1 && dw === 1) || wasmKernelsHandleDilation()) {
      const dilations = [dh, dw];
      return {
        x: () => run(tf.DepthwiseConv2dNativeBackpropInput, { dy: dy4, filter }, { ...common, dilations, inputShape: x.shape }),
        filter: () => run(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy: dy4 }, { ...common, dilations, filterShape: filter.shape }),
      };
    }
    const one = [1, 1];
    return {
      x: () =>
        run(
          tf.DepthwiseConv2dNativeBackpropInput,
          { dy: dy4, filter: zeroInsertFilter(filter, dh, dw) },
          { ...common, dilations: one, inputShape: x.shape },
        ),
      filter: () => {
        const [kh, kw, c, m] = filter.shape;
        const filterShape = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, c, m];
        return everyNthTap(
          run(tf.DepthwiseConv2dNativeBackpropFilter, { x, dy: dy4 }, { ...common, dilations: one, filterShape }),
          dh,
          dw,
        );
      },
    };
  },
};

/** Installs the gradients above (idempotent). */
export function registerConvGradients(): string[] {
  for (const config of [conv2DGradConfig, depthwiseConv2dNativeGradConfig]) {
    if (tf.getGradient(config.kernelName) !== config) tf.registerGradient(config);
  }
  return [conv2DGradConfig.kernelName, depthwiseConv2dNativeGradConfig.kernelName];
}
