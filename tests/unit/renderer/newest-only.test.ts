import { describe, expect, it } from 'vitest';

import { newestOnly } from '../../../renderer/src/newest-only';

describe('newestOnly', () => {
  it('marks an earlier request stale when a later one started, whichever answers first', async () => {
    const newest = newestOnly();
    let release!: () => void;
    const slow = newest(() => new Promise<string>((r) => (release = () => r('old'))));
    const fast = await newest(async () => 'new');
    release();
    expect(fast).toEqual({ value: 'new', stale: false });
    expect(await slow).toEqual({ value: 'old', stale: true });
    expect(await newest(async () => 1)).toEqual({ value: 1, stale: false });
  });
});
