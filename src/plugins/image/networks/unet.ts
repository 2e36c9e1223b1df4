import * as tf from '@tensorflow/tfjs';
import { Conv2d, GroupNorm, silu } from '../../../core/nn/layers.js';
import type { NetworkContext } from '../../../core/plugin.js';
import { AttentionBlock2d, Downsample, ResBlock, Upsample, type BlockContext } from './blocks.js';
import { ImageDenoiserBase } from './common.js';
import type { UNetConfig } from './config.js';

interface Level {
  readonly res: ResBlock[];
  /** attention after res[j], or undefined */
  readonly attn: (AttentionBlock2d | undefined)[];
}

/**
 * The DDPM U-Net (Ho et al. 2020, https://arxiv.org/abs/2006.11239, app. B;
 * diffusion_tf/models/unet.py) with improved DDPM's options (Nichol &
 * Dhariwal 2021, https://arxiv.org/abs/2102.09672): multi-head attention,
 * class embedding.
 *
 *   h = conv3x3(x)
 *   down, level i = 0..L-1:  num_res_blocks x [ResBlock(-> channels * mult[i]), attention if the
 *                            resolution is listed], then Downsample unless last;
 *                            every output is kept for a skip connection
 *   middle:                  ResBlock, attention (mid_attention), ResBlock
 *   up, level i = L-1..0:    (num_res_blocks + 1) x [concat(h, skip), ResBlock, attention],
 *                            then Upsample unless i = 0
 *   out = conv3x3(SiLU(GN(h))), zero-initialized (the network starts at 0).
 *
 * Resolutions go 28 -> 14 -> 7 for Fashion-MNIST (odd sizes round up going
 * down and are cropped back going up).
 */
export class UNet extends ImageDenoiserBase {
  readonly convIn: Conv2d;
  readonly down: Level[] = [];
  readonly downsamplers: (Downsample | undefined)[] = [];
  readonly mid: { res1: ResBlock; attn: AttentionBlock2d | undefined; res2: ResBlock };
  readonly up: Level[] = [];
  readonly upsamplers: (Upsample | undefined)[] = [];
  readonly normOut: GroupNorm;
  readonly convOut: Conv2d;
  /** Feature-map heights per level. */
  readonly resolutions: number[];

  constructor(
    override readonly config: UNetConfig,
    ctx: NetworkContext,
  ) {
    super('unet', config, ctx);
    try {
      const [h, w, c] = this.exampleShape;
      const groups = config.norm_groups;
      const heads = config.num_heads;
      const emb = this.embDim;
      const drop = config.dropout;
      const mults = config.channel_mult;
      this.resolutions = [];
      for (let i = 0, r = h; i < mults.length; i++, r = Math.ceil(r / 2)) this.resolutions.push(r);
      const attnAt = new Set(config.attention_resolutions);
      for (const r of attnAt) {
        if (!this.resolutions.includes(r)) {
          throw new Error(
            `unet: attention_resolutions lists ${r}, but the feature maps of a ${h}x${w} input are ${this.resolutions.join(', ')} high`,
          );
        }
      }

      const root = this.scope(ctx.rng);
      this.convIn = new Conv2d(root.child('conv_in'), c, config.channels, { kernel: 3 });
      let ch = config.channels;
      const skips: number[] = [ch];
      mults.forEach((m, i) => {
        const s = root.child('down').child(i);
        const out = config.channels * m;
        const level: Level = { res: [], attn: [] };
        for (let j = 0; j < config.num_res_blocks; j++) {
          level.res.push(new ResBlock(s.child('res').child(j), ch, out, emb, groups, drop));
          ch = out;
          level.attn.push(attnAt.has(this.resolutions[i] as number) ? new AttentionBlock2d(s.child('attn').child(j), ch, heads, groups) : undefined);
          skips.push(ch);
        }
        this.down.push(level);
        if (i < mults.length - 1) {
          this.downsamplers.push(new Downsample(s.child('downsample'), ch, config.downsample));
          skips.push(ch);
        } else {
          this.downsamplers.push(undefined);
        }
      });

      const ms = root.child('mid');
      this.mid = {
        res1: new ResBlock(ms.child('res1'), ch, ch, emb, groups, drop),
        attn: config.mid_attention ? new AttentionBlock2d(ms.child('attn'), ch, heads, groups) : undefined,
        res2: new ResBlock(ms.child('res2'), ch, ch, emb, groups, drop),
      };

      // Built in the order they run (deepest level first) so the variable order follows the data flow.
      for (let i = mults.length - 1; i >= 0; i--) {
        const s = root.child('up').child(i);
        const out = config.channels * (mults[i] as number);
        const level: Level = { res: [], attn: [] };
        for (let j = 0; j < config.num_res_blocks + 1; j++) {
          const skipCh = skips.pop() as number;
          level.res.push(new ResBlock(s.child('res').child(j), ch + skipCh, out, emb, groups, drop));
          ch = out;
          level.attn.push(attnAt.has(this.resolutions[i] as number) ? new AttentionBlock2d(s.child('attn').child(j), ch, heads, groups) : undefined);
        }
        this.up.unshift(level);
        this.upsamplers.unshift(i > 0 ? new Upsample(s.child('upsample'), ch) : undefined);
      }
      if (skips.length !== 0) throw new Error(`unet: internal error, ${skips.length} skip connections unused`);

      this.normOut = new GroupNorm(root.child('norm_out'), groups, ch);
      this.convOut = new Conv2d(root.child('conv_out'), ch, c, { kernel: 3, init: 'zeros' });
      this.dropoutRng = ctx.rng.fork();
    } catch (err) {
      this.store.dispose();
      throw err;
    }
  }

  protected forward(x: tf.Tensor4D, embAct: tf.Tensor2D, ctx: BlockContext): tf.Tensor4D {
    let h = this.convIn.apply(x);
    const skips: tf.Tensor4D[] = [h];
    this.down.forEach((level, i) => {
      level.res.forEach((block, j) => {
        h = block.apply(h, embAct, ctx);
        const attn = level.attn[j];
        if (attn) h = attn.apply(h);
        skips.push(h);
      });
      const ds = this.downsamplers[i];
      if (ds) {
        h = ds.apply(h);
        skips.push(h);
      }
    });
    h = this.mid.res1.apply(h, embAct, ctx);
    if (this.mid.attn) h = this.mid.attn.apply(h);
    h = this.mid.res2.apply(h, embAct, ctx);
    for (let i = this.up.length - 1; i >= 0; i--) {
      const level = this.up[i] as Level;
      level.res.forEach((block, j) => {
        h = block.apply(tf.concat([h, skips.pop() as tf.Tensor4D], 3), embAct, ctx);
        const attn = level.attn[j];
        if (attn) h = attn.apply(h);
      });
      const us = this.upsamplers[i];
      if (us) {
        const target = skips[skips.length - 1] as tf.Tensor4D;
        h = us.apply(h, target.shape[1], target.shape[2]);
      }
    }
    return this.convOut.apply(silu(this.normOut.apply(h)));
  }
}
