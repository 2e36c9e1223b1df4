import { z } from 'zod';

/**
 * The `model` section of an image run config (strict: unknown keys are
 * errors). `arch` picks the network; it defaults to 'unet'.
 *
 * The defaults are sized for 28x28x1 Fashion-MNIST on a 2-core CPU with the
 * wasm backend: the U-Net (channels 32, mult [1, 2, 2], one residual block
 * per level, attention at 7x7 and in the middle) has 1.11 M parameters, the
 * ResNet (10 blocks of 64 channels) 0.99 M (`defaultParameterCounts`).
 * Measured on the shared 2-core EPYC, wasm (one thread), batch 32, one
 * AdamW step (forward + backward + update), other jobs keeping the load
 * average at 4-6: U-Net 1.5-2.5 s (forward alone 0.4 s), ResNet 5-8 s
 * (forward 1.1 s): every ResNet weight works at full resolution, ~2.7x the
 * U-Net's convolution FLOPs for fewer parameters.
 */

const common = {
  /** Base width: the U-Net's first level / the ResNet's every block. */
  channels: z.int().min(1).max(4096),
  /** Features of c_noise: DDPM's sinusoidal embedding or NCSN++'s random Fourier features. */
  noise_embedding: z.enum(['sinusoidal', 'fourier']).default('sinusoidal'),
  /**
   * c_noise is multiplied by this before the embedding: 1 for timestep
   * indices (0..T-1) or EDM's ln(sigma)/4; ~1000 for continuous time in [0, 1].
   */
  embedding_input_scale: z.number().gt(0).max(1e6).default(1),
  /** Std of the Fourier frequencies (NCSN++ uses 16 with input ln(sigma)). */
  fourier_scale: z.number().gt(0).max(1e4).default(16),
  /** Dropout rate inside residual blocks (DDPM CIFAR-10: 0.1), active only in training mode. */
  dropout: z.number().min(0).lt(1).default(0),
  /** Learned class embedding with an extra null class (id = num_classes) for classifier-free guidance. */
  class_conditional: z.boolean().default(false),
  /** Groups of every GroupNorm; must divide every channel count. */
  norm_groups: z.int().min(1).max(1024).default(8),
  /** Heads of every attention block; must divide every attended channel count. */
  num_heads: z.int().min(1).max(64).default(4),
};

export const unetConfigSchema = z
  .strictObject({
    arch: z.literal('unet'),
    ...common,
    channels: common.channels.default(32),
    /** Width multiplier per level; one down-sampling between consecutive levels. */
    channel_mult: z.array(z.int().min(1).max(64)).min(1).max(8).default([1, 2, 2]),
    /** Residual blocks per level on the way down (the way up has one more, as in DDPM). */
    num_res_blocks: z.int().min(1).max(16).default(1),
    /** Feature-map sizes (height) with self-attention after each residual block. */
    attention_resolutions: z.array(z.int().min(1)).default([7]),
    /** Attention between the two residual blocks of the middle (DDPM always has it). */
    mid_attention: z.boolean().default(true),
    /** Down-sampling: strided 3x3 conv or 2x2 average pooling. */
    downsample: z.enum(['conv', 'avgpool']).default('conv'),
  })
  .superRefine((c, ctx) => {
    for (const m of new Set(c.channel_mult)) {
      const ch = c.channels * m;
      if (ch % c.norm_groups !== 0) {
        ctx.addIssue({ code: 'custom', path: ['norm_groups'], message: `${c.norm_groups} groups do not divide ${ch} channels (channels x channel_mult)` });
      }
    }
    const attended = c.attention_resolutions.length > 0 || c.mid_attention;
    if (attended) {
      for (const m of new Set(c.channel_mult)) {
        const ch = c.channels * m;
        if (ch % c.num_heads !== 0) {
          ctx.addIssue({ code: 'custom', path: ['num_heads'], message: `${c.num_heads} heads do not divide ${ch} channels (channels x channel_mult)` });
        }
      }
    }
  });

export const resnetConfigSchema = z
  .strictObject({
    arch: z.literal('resnet'),
    ...common,
    channels: common.channels.default(64),
    /** Residual blocks, all at full resolution. */
    num_blocks: z.int().min(1).max(256).default(10),
    /** Indices of residual blocks followed by self-attention (full resolution: expensive). */
    attention_blocks: z.array(z.int().min(0)).default([]),
  })
  .superRefine((c, ctx) => {
    if (c.channels % c.norm_groups !== 0) {
      ctx.addIssue({ code: 'custom', path: ['norm_groups'], message: `${c.norm_groups} groups do not divide ${c.channels} channels` });
    }
    if (c.attention_blocks.length > 0 && c.channels % c.num_heads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['num_heads'], message: `${c.num_heads} heads do not divide ${c.channels} channels` });
    }
    c.attention_blocks.forEach((i, k) => {
      if (i >= c.num_blocks) ctx.addIssue({ code: 'custom', path: ['attention_blocks', k], message: `block ${i} does not exist (num_blocks ${c.num_blocks})` });
    });
  });

/** `arch` defaults to 'unet'; the rest is validated by that architecture's schema. */
export const imageModelSchema = z.preprocess(
  (v) => (v !== null && typeof v === 'object' && !Array.isArray(v) && !('arch' in v) ? { ...v, arch: 'unet' } : v),
  z.discriminatedUnion('arch', [unetConfigSchema, resnetConfigSchema]),
);

export type UNetConfig = z.output<typeof unetConfigSchema>;
export type ResNetConfig = z.output<typeof resnetConfigSchema>;
export type ImageModelConfig = UNetConfig | ResNetConfig;
/** What a user may write (every key but `arch` optional for the U-Net). */
export type ImageModelConfigInput = z.input<typeof unetConfigSchema> | z.input<typeof resnetConfigSchema> | Omit<z.input<typeof unetConfigSchema>, 'arch'>;
