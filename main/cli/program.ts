import { Command } from 'commander';

import { register as hidden } from './commands/hidden';
import { register as model } from './commands/model';
import { register as doctor } from './commands/doctor';
import { register as latents } from './commands/latents';
import { register as train } from './commands/train';
import { register as score } from './commands/score';
import { register as evaluate } from './commands/eval';
import { register as importCmd } from './commands/import';
import { register as datasets } from './commands/datasets';
import { register as filter } from './commands/filter';
import { register as decide } from './commands/decide';
import { register as exportCmd } from './commands/export';
import { register as labels } from './commands/labels';
import { register as serve } from './commands/serve';
import { register as demo } from './commands/demo';
import { register as generate } from './commands/generate';
import { register as generateIds } from './commands/generate-ids';
import { register as precisionCheck } from './commands/precision-check';
import { register as queue } from './commands/queue';
import { register as compare } from './commands/compare';
import { register as dedupe } from './commands/dedupe';

/** Builds the `sparserm` command tree. Each command lives in its own file under commands/. */
export function buildProgram(): Command {
  const program = new Command('sparserm')
    .description('SparseRM Studio: score, explain and curate preference data with a sparse-autoencoder reward model')
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  for (const register of [hidden, model, doctor, latents, train, score, evaluate, importCmd, datasets, filter, decide, exportCmd, labels, serve, demo, queue, precisionCheck, generate, generateIds, compare, dedupe]) {
    register(program);
  }
  return program;
}
