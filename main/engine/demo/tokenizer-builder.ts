import { GEMMA2_IT_CHAT_TEMPLATE } from '../backbone/chat-template';

/**
 * Builds the demo kit's tokenizer files: a BPE with byte fallback laid out like Gemma's (same special tokens at
 * the same ids, " " → "▁" normaliser, no pre-tokenizer, no dummy prefix, ByteFallback/Fuse decoder), with merges
 * learnt deterministically from the demo texts so tokens are word-ish. The files are then read back through
 * `loadTokenizer` (@huggingface/tokenizers) like any real checkpoint's; only the *training* is written here,
 * because no maintained JS library trains BPE.
 */

export interface DemoTokenizerFiles {
  tokenizerJson: object;
  tokenizerConfig: object;
  specialTokensMap: object;
  vocabSize: number;
}

/** Gemma's fixed ids: <pad>=0 <eos>=1 <bos>=2 <unk>=3 … <start_of_turn>=106 <end_of_turn>=107. */
const SPECIALS: Array<[number, string, boolean]> = [
  [0, '<pad>', true],
  [1, '<eos>', true],
  [2, '<bos>', true],
  [3, '<unk>', true],
  [4, '<mask>', false],
];
const UNUSED_FROM = 5;
const START_OF_TURN = 106;
const END_OF_TURN = 107;
const BYTES_FROM = 108;

export function buildDemoTokenizer(corpus: readonly string[], vocabSize: number): DemoTokenizerFiles {
  const vocab = new Map<string, number>();
  const added: Array<{ id: number; content: string; special: boolean }> = [];
  for (const [id, content, special] of SPECIALS) added.push({ id, content, special });
  for (let id = UNUSED_FROM; id < START_OF_TURN; id++) added.push({ id, content: `<unused${id - UNUSED_FROM}>`, special: false });
  added.push({ id: START_OF_TURN, content: '<start_of_turn>', special: true }, { id: END_OF_TURN, content: '<end_of_turn>', special: true });
  for (const t of added) vocab.set(t.content, t.id);
  for (let b = 0; b < 256; b++) vocab.set(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, BYTES_FROM + b);

  const words = countWords(corpus);
  // Alphabet: characters seen at least twice (rarer ones fall back to bytes, as in a real SentencePiece vocab).
  const charCounts = new Map<string, number>();
  for (const [w, n] of words) for (const ch of w) charCounts.set(ch, (charCounts.get(ch) ?? 0) + n);
  const alphabet = [...charCounts]
    .filter(([, n]) => n >= 2)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([ch]) => ch);
  const budget = vocabSize - vocab.size;
  if (budget < alphabet.length + 16) throw new Error(`demo vocab size ${vocabSize} leaves no room for merges`);
  for (const ch of alphabet) vocab.set(ch, vocab.size);

  const merges = learnMerges(words, new Set(alphabet), vocab, vocabSize);

  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added.map((t) => ({ id: t.id, content: t.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: t.special })),
    normalizer: { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<bos>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<bos>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<bos>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<bos>': { id: '<bos>', ids: [2], tokens: ['<bos>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
  const addedTokensDecoder = Object.fromEntries(
    added.map((t) => [String(t.id), { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: t.special }]),
  );
  const tokenizerConfig = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: addedTokensDecoder,
    additional_special_tokens: ['<start_of_turn>', '<end_of_turn>'],
    bos_token: '<bos>',
    chat_template: GEMMA2_IT_CHAT_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: '<eos>',
    model_max_length: 8192,
    pad_token: '<pad>',
    padding_side: 'left',
    spaces_between_special_tokens: false,
    tokenizer_class: 'GemmaTokenizer',
    unk_token: '<unk>',
    use_default_system_prompt: false,
  };
  const specialTokensMap = {
    additional_special_tokens: ['<start_of_turn>', '<end_of_turn>'],
    bos_token: { content: '<bos>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    eos_token: { content: '<eos>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    pad_token: { content: '<pad>', lstrip: false, normalized: false, rstrip: false, single_word: false },
    unk_token: { content: '<unk>', lstrip: false, normalized: false, rstrip: false, single_word: false },
  };
  return { tokenizerJson, tokenizerConfig, specialTokensMap, vocabSize: vocab.size };
}

/** Word-ish training units of the normalised text: "▁word", "▁123", "▁?!" and runs of newlines. Merges are
 *  learnt inside these units only, so they never glue two words together. */
const WORD = /▁?\p{L}+|▁?\p{N}+|▁?[^\p{L}\p{N}▁\n]+|▁+|\n+/gu;

function countWords(corpus: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of corpus) {
    for (const m of text.replaceAll(' ', '▁').matchAll(WORD)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  }
  return counts;
}

/** Classic BPE training: repeatedly merge the most frequent adjacent pair; ties go to the lexicographically
 *  smallest pair so the result depends only on the corpus. */
function learnMerges(words: Map<string, number>, alphabet: Set<string>, vocab: Map<string, number>, vocabSize: number): Array<[string, string]> {
  const entries = [...words]
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w, n]) => ({ syms: [...w], n }))
    .filter((e) => e.syms.every((s) => alphabet.has(s)));
  const merges: Array<[string, string]> = [];
  while (vocab.size < vocabSize) {
    const pairs = new Map<string, number>();
    for (const { syms, n } of entries) {
      for (let i = 0; i + 1 < syms.length; i++) {
        const key = syms[i] + '\u0000' + syms[i + 1];
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best: string | undefined;
    let bestN = 1; // a pair seen once is noise, not a token
    for (const [key, n] of pairs) {
      if (n > bestN || (n === bestN && best !== undefined && key < best)) {
        best = key;
        bestN = n;
      }
    }
    if (best === undefined) break;
    const [a, b] = best.split('\u0000') as [string, string];
    merges.push([a, b]);
    // Two merge paths can spell the same token: it keeps its first id.
    if (!vocab.has(a + b)) vocab.set(a + b, vocab.size);
    for (const e of entries) {
      const out: string[] = [];
      for (let i = 0; i < e.syms.length; i++) {
        if (i + 1 < e.syms.length && e.syms[i] === a && e.syms[i + 1] === b) {
          out.push(a + b);
          i++;
        } else out.push(e.syms[i]);
      }
      e.syms = out;
    }
  }
  return merges;
}
