/** Keyboard helpers: shortcuts must never fire while the curator is typing in a field. */
export function isTypingTarget(el: EventTarget | null): boolean {
  if (!(el instanceof HTMLElement)) return false;
  if (el.isContentEditable) return true;
  const tag = el.tagName;
  if (tag === 'TEXTAREA' || tag === 'SELECT') return true;
  if (tag === 'INPUT') {
    const type = (el as HTMLInputElement).type;
    return !['checkbox', 'radio', 'button', 'submit', 'range', 'reset'].includes(type);
  }
  return false;
}

export interface Shortcut {
  keys: string;
  what: string;
}

export const reviewShortcuts: Shortcut[] = [
  { keys: 'Tab', what: 'reach the pair list (then ↑ / ↓, Home / End move the selection)' },
  { keys: 'j / ↓', what: 'next pair' },
  { keys: 'k / ↑', what: 'previous pair' },
  { keys: 'PageDown / PageUp', what: '15 pairs down / up' },
  { keys: 'a', what: 'keep (accept chosen ≻ rejected); with "advance" on, then the next pair' },
  { keys: 'd', what: 'drop the pair' },
  { keys: 's', what: 'swap chosen ↔ rejected (and keep)' },
  { keys: 'c', what: 'clear the decision (follow the model)' },
  { keys: 'n', what: 'write a note (Ctrl+Enter saves, Esc leaves the field)' },
  { keys: 'u / Ctrl+Z', what: 'undo your last step (each curator has their own undo); names and selects the pair' },
  { keys: 'r / Ctrl+Shift+Z / Ctrl+Y', what: 'redo' },
  { keys: '/', what: 'search' },
  { keys: 'g / G', what: 'first / last pair' },
  { keys: 'q', what: '"Review next": walk the queue of the pairs a decision would teach the model most (q or Esc leaves it)' },
  { keys: 'Alt+1…8', what: 'switch screen' },
  { keys: '?', what: 'this cheat sheet' },
];
