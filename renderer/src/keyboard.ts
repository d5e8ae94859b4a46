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
  { keys: 'j / ↓', what: 'next pair' },
  { keys: 'k / ↑', what: 'previous pair' },
  { keys: 'a', what: 'keep (accept chosen ≻ rejected)' },
  { keys: 'd', what: 'drop the pair' },
  { keys: 's', what: 'swap chosen ↔ rejected (and keep)' },
  { keys: 'c', what: 'clear the decision (follow the model)' },
  { keys: 'n', what: 'write a note (Ctrl+Enter saves, Esc leaves the field)' },
  { keys: 'u / Ctrl+Z', what: 'undo' },
  { keys: 'r / Ctrl+Shift+Z / Ctrl+Y', what: 'redo' },
  { keys: '/', what: 'search' },
  { keys: 'g / G', what: 'first / last pair' },
  { keys: 'Alt+1…6', what: 'switch screen' },
  { keys: '?', what: 'this cheat sheet' },
];
