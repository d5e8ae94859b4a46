/**
 * Loads the markdown renderer (markdown-it + DOMPurify, ~250 kB) in its own chunk, once, after the app's first
 * paint: the review list must not wait for it.
 */
import type { renderMarkdown } from './markdown';

type Render = typeof renderMarkdown;
let loading: Promise<Render> | null = null;

export const markdownRenderer = {
  current: null as Render | null,
  load(): Promise<Render> {
    loading ??= import('./markdown').then((m) => (markdownRenderer.current = m.renderMarkdown));
    return loading;
  },
};
