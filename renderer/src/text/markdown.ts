/**
 * Markdown of prompts and responses rendered for reading: markdown-it with raw HTML off (a `<script>` in a pair is
 * shown as text, never parsed), then DOMPurify over the result as a second line of defence, then search terms
 * marked in the text nodes. Images are dropped: a dataset must not make the app fetch URLs.
 */
import MarkdownIt from 'markdown-it';
import DOMPurify from 'dompurify';
import { markTerms } from './search-terms';

const md = new MarkdownIt({ html: false, linkify: false, breaks: true, typographer: false });

export function renderMarkdown(text: string, terms: readonly string[] = []): string {
  const frag = DOMPurify.sanitize(md.render(text), { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ['img', 'style', 'form', 'input'], FORBID_ATTR: ['style'] });
  markTerms(frag, terms);
  // Links open nothing inside the app window: they are inert text with the target on hover.
  for (const a of frag.querySelectorAll('a')) {
    a.setAttribute('title', a.getAttribute('href') ?? '');
    a.removeAttribute('href');
  }
  const box = document.createElement('div');
  box.appendChild(frag);
  return box.innerHTML;
}
