import type { Command } from 'commander';

import { InputError } from '../../engine/errors';
import { extractLatents } from '../../engine/sparserm/service';
import { action, printJson, progress } from '../output';
import { parseIds } from './hidden';
import { parseIntOpt, resolveBackbone, type BackboneOpts } from './train';

interface LatentsOpts extends BackboneOpts {
  ids?: string;
  text?: string;
  top?: string;
  maxTokens?: string;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('latents')
    .description('active JumpReLU SAE latents of resid_post(L) for every token (BOS included), largest first')
    .option('--checkpoint <dir>', 'Hugging Face Gemma-2 or Llama-3.x checkpoint folder')
    .option('--layer <L>', 'block whose resid_post is encoded (0-based)')
    .option('--sae <path>', 'Gemma Scope params.npz, SAELens folder (cfg.json + sae_weights.safetensors) or Llama Scope folder (hyperparams.json + checkpoints/)')
    .option('--sae-encoding <e>', 'Llama Scope only: saelens (default: SAELens\'s activation values) | authors')
    .option('--demo', 'use the demo kit\'s checkpoint, layer and SAE')
    .option('--ids <ids>', 'comma-separated token ids, e.g. 2,17,45')
    .option('--text <text>', 'text to tokenize with the checkpoint\'s tokenizer (BOS added)')
    .option('--top <n>', 'only the N strongest latents per token')
    .option('--max-tokens <n>', 'at most N tokens through the backbone, BOS included (default 1024; the end of a longer text is cut)')
    .option('--ep <ep>', 'execution provider: auto | cpu | cuda | webgpu (auto: CUDA, else a WebGPU GPU adapter, else CPU)', 'auto')
    .option('--json', 'print {"layer", "ids", "latents": [[[index, value], …] per token]} on stdout')
    .action(
      action(async (o: LatentsOpts) => {
        if ((o.ids === undefined) === (o.text === undefined)) throw new InputError({ field: '--ids/--text', expected: 'exactly one of --ids or --text', got: o.ids ? 'both' : 'neither' });
        const bb = await resolveBackbone(o);
        const res = await extractLatents({
          checkpoint: bb.checkpoint,
          layer: bb.layer,
          sae: bb.sae,
          saeEncoding: bb.saeEncoding,
          ep: bb.ep,
          ids: o.ids !== undefined ? parseIds(o.ids) : undefined,
          text: o.text,
          top: parseIntOpt('--top', o.top, 1),
          maxTokens: parseIntOpt('--max-tokens', o.maxTokens, 1),
          maxTokensField: '--max-tokens',
          onWarning: (w) => progress(`warning: ${w}`),
        });
        if (o.json) printJson(res);
        else
          res.latents.forEach((row, t) => {
            process.stdout.write(`${t}\t${res.ids[t]}\t${row.map(([j, v]) => `${j}:${v.toFixed(3)}`).join(' ')}\n`);
          });
      }),
    );
}
