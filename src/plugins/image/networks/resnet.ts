import type * as tf from '@tensorflow/tfjs';
import { Conv2d, GroupNorm, silu } from '../../../core/nn/layers.js';
import type { NetworkContext } from '../../../core/plugin.js';
import { AttentionBlock2d, ResBlock, type BlockContext } from './blocks.js';
import { ImageDenoiserBase } from './common.js';
import type { ResNetConfig } from './config.js';

/**
 * A plain residual denoiser: the U-Net's residual blocks (noise embedding
 * added in each) stacked at full resolution, with no down- or up-sampling
 * and, by default, no attention. The baseline that isolates what the
 * U-Net's multi-scale structure buys at a comparable parameter count
 * (`defaultParameterCounts`); its receptive field grows by only 4 pixels per
 * block, and every block costs full-resolution compute.
 *
 *   h = conv3x3(x);  num_blocks x ResBlock (attention after the listed ones);
 *   out = conv3x3(SiLU(GN(h))), zero-initialized.
 */
export class ResNetDenoiser extends ImageDenoiserBase {
  readonly convIn: Conv2d;
  readonly blocks: ResBlock[] = [];
  readonly attn: (AttentionBlock2d | undefined)[] = [];
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(
    override readonly config: ResNetConfig,
    ctx: NetworkContext,
  ) {
    super('resnet', config, ctx);
    try {
      const c = this.exampleShape[2];
      const ch = config.channels;
      const root = this.scope(ctx.rng);
      const attnAt = new Set(config.attention_blocks);
      this.convIn = new Conv2d(root.child('conv_in'), c, ch, { kernel: 3 });
      for (let i = 0; i < config.num_blocks; i++) {
        this.blocks.push(new ResBlock(root.child('blocks').child(i), ch, ch, this.embDim, config.norm_groups, config.dropout));
        this.attn.push(attnAt.has(i) ? new AttentionBlock2d(root.child('attn').child(i), ch, config.num_heads, config.norm_groups) : undefined);
      }
      this.normOut = new GroupNorm(root.child('norm_out'), config.norm_groups, ch);
      this.convOut = new Conv2d(root.child('conv_out'), ch, c, { kernel: 3, init: 'zeros' });
      this.dropoutRng = ctx.rng.fork();
    } catch (err) {
      this.store.dispose();
      throw err;
    }
  }

  protected forward(x: tf.Tensor4D, embAct: tf.Tensor2D, ctx: BlockContext): tf.Tensor4D {
    let h = this.convIn.apply(x);
    this.blocks.forEach((block, i) => {
      h = block.apply(h, embAct, ctx);
      const attn = this.attn[i];
      if (attn) h = attn.apply(h);
    });
    return this.convOut.apply(silu(this.normOut.apply(h)));
  }
}
