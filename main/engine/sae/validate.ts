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
  return { warnings };
}
