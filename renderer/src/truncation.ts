/**
 * The Review badge for the length policy: one line per side whose sequence the reward model's max-token setting cut
 * when the pair was scored (the score saw only what was left). Pure, so it is unit-tested without a browser.
 */
export interface SideCut {
  prompt: number;
  response: number;
  original: number;
}

export function truncationBadges(t: { chosen?: SideCut; rejected?: SideCut } | null | undefined): Array<{ side: 'chosen' | 'rejected'; text: string; title: string }> {
  return (['chosen', 'rejected'] as const).flatMap((side) => {
    const c = t?.[side];
    return c
      ? [{ side, text: `truncated (${side}): ${c.prompt} tokens cut from prompt / ${c.response} from response`, title: `${c.original} tokens before the cut; the oldest prompt tokens go first, then the end of the response` }]
      : [];
  });
}
