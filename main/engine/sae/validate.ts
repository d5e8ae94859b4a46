import fs from 'node:fs';
import path from 'node:path';

import { InputError } from '../errors';
import type { Sae } from './load';

export interface BackboneShape {
  /** The checkpoint folder (named in errors). */
  checkpoint: string;
  hiddenSize: number;
  /** The layer whose resid_post the SAE will encode. */
  layer: number;
}

/**
 * An SAE only makes sense on the residual stream it was trained on. A width mismatch is fatal (InputError naming
 * both files and both numbers); a different hook layer is allowed (curators do probe other layers) but warned.
 */
export function checkSaeForBackbone(sae: Sae, backbone: BackboneShape): { warnings: string[] } {
  if (sae.dIn !== backbone.hiddenSize) {
    throw new InputError({
      file: `${sae.path} vs ${path.join(backbone.checkpoint, 'config.json')}`,
      field: 'd_in',
      expected: `the SAE's d_in to equal the backbone's hidden_size ${backbone.hiddenSize}`,
      got: `d_in ${sae.dIn}`,
    });
  }
  const warnings: string[] = [];
  if (sae.hookLayer !== undefined && sae.hookLayer !== backbone.layer) {
    warnings.push(`SAE ${sae.id} was trained on layer ${sae.hookLayer} (resid_post) but layer ${backbone.layer} was chosen; its latents may not mean anything there`);
  }
  // A base-model SAE on an instruction-tuned checkpoint (Llama Scope on Llama-3.1-8B-Instruct, as the paper does;
  // Gemma Scope 2B-PT on 2B-it): allowed, said once.
  if (sae.trainedOn && !INSTRUCT_NAME.test(sae.trainedOn) && hasChatTemplate(backbone.checkpoint)) {
    warnings.push(`SAE ${sae.id} was trained on ${sae.trainedOn}, a base model, and is applied to an instruction-tuned checkpoint (${path.basename(backbone.checkpoint)}); this is what the paper does for Llama Scope, but activations can be shifted`);
  }
  return { warnings };
}

const INSTRUCT_NAME = /instruct|[-_]it\b|chat/i;

/** Instruction-tuned checkpoints ship a chat template in tokenizer_config.json. */
function hasChatTemplate(checkpoint: string): boolean {
  try {
    const cfg = JSON.parse(fs.readFileSync(path.join(checkpoint, 'tokenizer_config.json'), 'utf8')) as { chat_template?: unknown };
    return typeof cfg.chat_template === 'string' || Array.isArray(cfg.chat_template);
  } catch {
    return false;
  }
}
