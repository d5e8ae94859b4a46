/**
 * What decoding needs beyond the truncated graph, read from config.json (+ generation_config.json): the final norm,
 * which matrix is the LM head (tied to the embedding or its own `lm_head.weight`), the final-logit softcap and the
 * stop ids. Per-family defaults are data (transformers' config class defaults), not branches.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

import { InputError } from '../errors';
import type { ArchitectureSpec } from './architecture';
import type { Checkpoint } from './checkpoint';

interface HeadDefaults {
  /** transformers' default for tie_word_embeddings when config.json omits it. */
  tieWordEmbeddings: boolean;
  /** config.json key of the final-logit softcap (null: the family has none). */
  finalSoftcapKey: string | null;
  finalNorm: string;
  lmHead: string;
}

const HEAD_DEFAULTS: Record<ArchitectureSpec['id'], HeadDefaults> = {
  gemma2: { tieWordEmbeddings: true, finalSoftcapKey: 'final_logit_softcapping', finalNorm: 'model.norm.weight', lmHead: 'lm_head.weight' },
  llama: { tieWordEmbeddings: false, finalSoftcapKey: null, finalNorm: 'model.norm.weight', lmHead: 'lm_head.weight' },
};

export interface HeadSpec {
  /** Final RMSNorm weight tensor (applied with the family's normStyle). */
  finalNorm: string;
  /** The [vocab, hidden] matrix the logits are x·Wᵀ of: the embedding when tied. */
  lmHead: string;
  tied: boolean;
  /** logits = cap·tanh(logits / cap); null: none. */
  finalSoftcap: number | null;
  /** Ids that end a sequence: config.json's and generation_config.json's eos_token_id (deduplicated, sorted). */
  eosIds: number[];
}

const ids = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())]).nullable().optional();
const rawSchema = z.looseObject({
  tie_word_embeddings: z.boolean().optional(),
  eos_token_id: ids,
  final_logit_softcapping: z.number().positive().nullable().optional(),
});

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new InputError({ file, expected: 'JSON', got: (err as Error).message }, err);
  }
}

function eosOf(raw: unknown, file: string, vocab: number): number[] {
  const p = rawSchema.safeParse(raw);
  if (!p.success) throw new InputError({ file, field: 'eos_token_id', expected: 'a token id or a list of token ids' });
  const v = p.data.eos_token_id;
  const list = v == null ? [] : Array.isArray(v) ? v : [v];
  const bad = list.find((id) => id >= vocab);
  if (bad !== undefined) throw new InputError({ file, field: 'eos_token_id', expected: `token ids below vocab_size (${vocab})`, got: String(bad) });
  return list;
}

export function readHeadSpec(ckpt: Checkpoint): HeadSpec {
  const c = ckpt.config;
  const d = HEAD_DEFAULTS[c.arch.id];
  const cfgFile = path.join(ckpt.dir, 'config.json');
  const raw = readJson(cfgFile);
  const parsed = rawSchema.safeParse(raw);
  if (!parsed.success) throw new InputError({ file: cfgFile, field: 'tie_word_embeddings / final_logit_softcapping', expected: 'a boolean / a positive number or null' });
  const tied = parsed.data.tie_word_embeddings ?? d.tieWordEmbeddings;
  const capRaw = d.finalSoftcapKey ? (raw as Record<string, unknown>)[d.finalSoftcapKey] : null;
  if (capRaw != null && (typeof capRaw !== 'number' || !(capRaw > 0))) {
    throw new InputError({ file: cfgFile, field: d.finalSoftcapKey!, expected: 'a positive number or null', got: JSON.stringify(capRaw) });
  }
  const eos = new Set(eosOf(raw, cfgFile, c.vocabSize));
  const genFile = path.join(ckpt.dir, 'generation_config.json');
  if (fs.existsSync(genFile)) for (const id of eosOf(readJson(genFile), genFile, c.vocabSize)) eos.add(id);
  const lmHead = tied ? c.arch.tensors.embed : d.lmHead;
  if (!ckpt.tensors.has(lmHead)) {
    throw new InputError({ file: ckpt.dir, tensor: lmHead, expected: tied ? 'the embedding (tied LM head)' : 'lm_head.weight (tie_word_embeddings is false)', got: 'no such tensor' });
  }
  if (!ckpt.tensors.has(d.finalNorm)) throw new InputError({ file: ckpt.dir, tensor: d.finalNorm, expected: 'the final norm weight (needed for decoding)', got: 'no such tensor' });
  return { finalNorm: d.finalNorm, lmHead, tied, finalSoftcap: (capRaw as number | null | undefined) ?? null, eosIds: [...eos].sort((a, b) => a - b) };
}
