import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError, formatInputError } from '../../../main/engine/errors';
import { dataHome, databasePath, cacheHome } from '../../../main/engine/paths';

describe('InputError', () => {
  it('names the file, line, field and what was expected', () => {
    const err = new InputError({ file: 'pairs.jsonl', line: 12, field: 'chosen', expected: 'a string', got: 'number' });
    expect(err.message).toBe('pairs.jsonl, line 12, field "chosen": expected a string, got number');
    expect(err.details.line).toBe(12);
  });
  it('names a tensor', () => {
    expect(formatInputError({ file: 'model.safetensors', tensor: 'model.norm.weight', expected: 'shape [32]', got: '[16]' })).toBe(
      'model.safetensors, tensor "model.norm.weight": expected shape [32], got [16]',
    );
  });
});

describe('per-user paths', () => {
  it('follows the platform conventions', () => {
    const env = { HOME: '/home/u' } as NodeJS.ProcessEnv;
    expect(dataHome({ XDG_DATA_HOME: '/x' }, 'linux')).toBe(path.join('/x', 'sparserm-studio'));
    expect(dataHome(env, 'darwin')).toMatch(/Library\/Application Support\/SparseRM Studio$/);
    expect(dataHome({ APPDATA: 'C:/Users/u/AppData/Roaming' }, 'win32')).toMatch(/SparseRM Studio$/);
  });
  it('lets --db beat SPARSERM_DB beat SPARSERM_HOME', () => {
    const env = { SPARSERM_HOME: '/h', SPARSERM_DB: '/d/x.db' } as NodeJS.ProcessEnv;
    expect(databasePath('/cli.db', env)).toBe('/cli.db');
    expect(databasePath(undefined, env)).toBe('/d/x.db');
    expect(databasePath(undefined, { SPARSERM_HOME: '/h' })).toBe(path.join('/h', 'sparserm.db'));
    expect(cacheHome({ SPARSERM_HOME: '/h' })).toBe(path.join('/h', 'cache'));
    expect(cacheHome({ SPARSERM_HOME: '/h', SPARSERM_CACHE: '/c' })).toBe('/c');
  });
});
