import fs from 'node:fs';
import path from 'node:path';

import { buildDemoTokenizer } from '../../../main/engine/demo/tokenizer-builder';
import { readDemoPairs, tokenizerCorpus } from '../../../main/engine/demo/demo-data';
import { tempDir } from '../../helpers/paths';

let files: ReturnType<typeof buildDemoTokenizer> | undefined;

/** A Gemma-layout tokenizer folder (the demo kit's tokenizer files, built from the shipped demo data). */
export function writeDemoTokenizerDir(overrides: { tokenizerConfig?: (cfg: Record<string, unknown>) => Record<string, unknown> } = {}): string {
  const dir = tempDir('sparserm-tok-');
  files ??= buildDemoTokenizer(tokenizerCorpus(readDemoPairs()), 1024);
  const cfg = overrides.tokenizerConfig ? overrides.tokenizerConfig({ ...(files.tokenizerConfig as Record<string, unknown>) }) : files.tokenizerConfig;
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(files.tokenizerJson));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
  fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify(files.specialTokensMap));
  return dir;
}

export function readJsonl<T = Record<string, unknown>>(file: string): T[] {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as T);
}
