/**
 * The seam between whatever produces candidate responses (this engine's own KV-cache decoder, or an
 * OpenAI-compatible chat-completions endpoint) and the generation workflow (runs, pairing recipes, lineage).
 * Both sources implement CandidateSource; the workflow never knows which one it has.
 */
import type { ChatMessage } from '../backbone/chat-template';

export interface SamplingParams {
  /** 0 = greedy (argmax, ties to the lowest id). */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 = off. */
  topP: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK: number;
  /** Seed of the sampler's RNG: same seed, same params, same policy → same tokens. */
  seed: number;
  maxNewTokens: number;
}

export interface GenerateRequest extends SamplingParams {
  /** The conversation so far (the prompt); the candidates are the next assistant turn. */
  messages: ChatMessage[];
  /** Candidates per prompt. */
  n: number;
  signal?: AbortSignal;
  /** Called as tokens are produced (for a tokens/s progress bar). */
  onTokens?: (newTokens: number) => void;
}

export type FinishReason = 'stop' | 'length';

export interface Candidate {
  text: string;
  /** Generated token ids (end-of-turn / eos excluded); null when the source doesn't say (some endpoints). */
  tokens: number[] | null;
  /** Sum of log p(token) under the policy's (unmodified, temperature-1) distribution; null when unknown. */
  logprob: number | null;
  finishReason: FinishReason;
  /**
   * Mean-pooled SparseRM features captured while decoding (score while generating): present only when the
   * source is the local engine AND its checkpoint is the reward model's backbone. Same layout as the
   * feature cache's pooled vectors for this response.
   */
  captured?: Float32Array;
}

export interface SourceDescription {
  kind: 'local' | 'endpoint';
  /** Local: the checkpoint's content hash; endpoint: `${url}#${model}`. Recorded with the generation run. */
  policy: string;
  /** Human-readable: checkpoint folder or endpoint URL + model name. */
  label: string;
}

export interface CandidateSource {
  readonly description: SourceDescription;
  generate(req: GenerateRequest): Promise<Candidate[]>;
  /**
   * log p(option | messages) for each option text as the next assistant turn's first tokens (the self-judged
   * recipe asks "A or B?" and compares the answer tokens). Null when the source can't give log-probabilities.
   */
  optionLogprobs(messages: ChatMessage[], options: string[], signal?: AbortSignal): Promise<number[] | null>;
  close(): Promise<void>;
}
