/**
 * Markdown of prompts and responses rendered for reading: markdown-it with raw HTML off (a `<script>` in a pair is
 * shown as text, never parsed), then DOMPurify over the result as a second line of defence, then search terms
 * marked in the text nodes. Images are dropped: a dataset must not make the app fetch URLs.
 */
import MarkdownIt from 'markdown-it';
import DOMPurify from 'dompurify';
import { splitHits } from './search-terms';

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

/** Wraps the term matches inside the text nodes of `root` in <mark> (after sanitising, so no markup is parsed). */
export function markTerms(root: Node, terms: readonly string[]): void {
  if (!terms.length) return;
  const doc = root.ownerDocument ?? (root as Document);
  const walker = doc.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes: Text[] = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) nodes.push(n as Text);
  for (const node of nodes) {
    const runs = splitHits(node.data, terms);
    if (runs.length === 1 && !runs[0]!.hit) continue;
    const frag = doc.createDocumentFragment();
    for (const r of runs) {
      if (r.hit) {
        const mark = doc.createElement('mark');
        mark.textContent = r.text;
        frag.appendChild(mark);
      } else frag.appendChild(doc.createTextNode(r.text));
    }
    node.parentNode?.replaceChild(frag, node);
  }
}
