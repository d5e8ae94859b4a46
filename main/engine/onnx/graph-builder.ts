/**
 * A small ONNX graph builder on onnx-proto (protobufjs), shared by every graph the engine builds
 * (backbone, SAE JumpReLU, reward head).
 *
 * Usage:
 *   const b = new GraphBuilder({ name: 'head', externalData: { dir, file: 'model.onnx.data' } });
 *   const x = b.input('x', 'float32', ['batch', 64]);           // string dims are symbolic
 *   const w = b.initializer('w', new Float32Array(64 * 8), [64, 8]);
 *   const y = b.op('MatMul', [x, w]);                           // one output, auto-named
 *   b.node('Gelu', [y], ['out'], { approximate: 'tanh' });      // explicit names
 *   b.output('out', 'float32', ['batch', 8]);
 *   const bytes = b.toModel({ opset: 21 });                     // then write bytes to dir/model.onnx
 *
 * Attributes: integers become INT, other numbers FLOAT, strings STRING, arrays INTS/FLOATS/STRINGS by the
 * same rule; force a kind with attr.float(1) / attr.int(3) / attr.floats([1, 2]) / attr.tensor(...).
 *
 * External data: with `externalData` set, every initializer of at least `minBytes` (default 1 KiB) is appended
 * to `dir/file` the moment it is added and dropped from memory, so building a model of many GB needs memory
 * for one tensor at a time. ORT resolves the location relative to the model file and only accepts locations
 * inside the model's folder: save the model in the same `dir`, and load it by path (not bytes).
 *
 * int64: protobufjs turns BigInt given to create() into 0, so int64 tensors are written as raw little-endian
 * bytes and int64 attributes/dims as plain numbers.
 */
import fs from 'node:fs';
import path from 'node:path';
import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type TensorProtoT = onnxProto.onnx.ITensorProto;
type AttributeProtoT = onnxProto.onnx.IAttributeProto;
type ValueInfoT = onnxProto.onnx.IValueInfoProto;
type NodeProtoT = onnxProto.onnx.INodeProto;

export type ElemType = 'float32' | 'float16' | 'bfloat16' | 'float64' | 'int64' | 'int32' | 'int8' | 'uint8' | 'bool';
/** A fixed size, or a symbolic name (same name = same size across inputs/outputs). */
export type Dim = number | string;

export const ELEM_TYPE_CODE: Record<ElemType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  bfloat16: onnx.TensorProto.DataType.BFLOAT16,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  int8: onnx.TensorProto.DataType.INT8,
  uint8: onnx.TensorProto.DataType.UINT8,
  bool: onnx.TensorProto.DataType.BOOL,
};
const ELEM_SIZE: Record<ElemType, number> = { float32: 4, float16: 2, bfloat16: 2, float64: 8, int64: 8, int32: 4, int8: 1, uint8: 1, bool: 1 };

/** ORT 1.30 accepts IR ≤ 13 and opset ≤ 26 (see environment.md); IR 10 goes with opsets 21–22. */
export const MAX_OPSET = 26;
export const DEFAULT_IR_VERSION = 10;

type Tagged =
  | { kind: 'float'; value: number }
  | { kind: 'int'; value: number }
  | { kind: 'floats'; value: number[] }
  | { kind: 'ints'; value: number[] }
  | { kind: 'tensor'; value: InitializerData; dims: number[]; type?: ElemType };
export type AttrValue = number | string | number[] | string[] | Tagged;

export const attr = {
  float: (value: number): Tagged => ({ kind: 'float', value }),
  int: (value: number): Tagged => ({ kind: 'int', value }),
  floats: (value: number[]): Tagged => ({ kind: 'floats', value }),
  ints: (value: number[]): Tagged => ({ kind: 'ints', value }),
  tensor: (value: InitializerData, dims: number[], type?: ElemType): Tagged => ({ kind: 'tensor', value, dims, type }),
};

/**
 * Initializer data: typed arrays map to their element type (Float32Array → float32, BigInt64Array → int64,
 * Int32Array → int32, Uint16Array → raw 16-bit words, which needs `type: 'float16' | 'bfloat16'`), or raw bytes
 * (Uint8Array with an explicit type).
 */
export type InitializerData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int8Array | Uint8Array | Uint16Array;

export interface ExternalDataOptions {
  /** Folder the model will be saved in; the data file goes here. */
  dir: string;
  /** Data file name (relative location stored in the model). Default `model.onnx.data`. */
  file?: string;
  /** Smaller initializers stay inline in the model. Default 1024 bytes. */
  minBytes?: number;
  /** Offsets are aligned to this many bytes (lets ORT mmap large tensors). Default 64. */
  align?: number;
}

export interface ToModelOptions {
  /** Default-domain opset (≤ 26). `Gelu(approximate="tanh")` needs ≥ 20. */
  opset: number;
  irVersion?: number;
  /** Extra operator sets, e.g. `{ 'com.microsoft': 1 }`. */
  extraOpsets?: Record<string, number>;
  producerName?: string;
  docString?: string;
  /** Key/value pairs stored in the model (ORT exposes them as custom metadata). */
  metadata?: Record<string, string>;
  /**
   * Without `externalData` in the constructor: write initializers ≥ 1 KiB to `externalDataDir/model.onnx.data`
   * now (the model must then be saved in that folder).
   */
  externalDataDir?: string;
}

function inferType(data: InitializerData): ElemType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Int8Array) return 'int8';
  if (data instanceof Uint8Array) return 'uint8';
  throw new Error('Uint16Array initializers need an explicit type (float16 or bfloat16)');
}

function bytesOf(data: InitializerData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function checkedType(name: string, data: InitializerData, dims: number[], type?: ElemType): ElemType {
  const t = type ?? inferType(data);
  const count = dims.reduce((a, d) => a * d, 1);
  if (count * ELEM_SIZE[t] !== data.byteLength) {
    throw new Error(`initializer ${name}: ${data.byteLength} bytes given, ${t}[${dims.join(',')}] needs ${count * ELEM_SIZE[t]}`);
  }
  return t;
}

function tensorProto(name: string, data: InitializerData, dims: number[], type?: ElemType): TensorProtoT {
  const t = checkedType(name, data, dims, type);
  // Copy: the caller may reuse its buffer, and protobufjs keeps a reference until encode().
  return { name, dims, dataType: ELEM_TYPE_CODE[t], rawData: Uint8Array.from(bytesOf(data)) };
}

function attribute(name: string, v: AttrValue): AttributeProtoT {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: Buffer.from(v, 'utf8') };
  if (typeof v === 'number') return Number.isInteger(v) ? { name, type: T.INT, i: v } : { name, type: T.FLOAT, f: v };
  if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') return { name, type: T.STRINGS, strings: (v as string[]).map((s) => Buffer.from(s, 'utf8')) };
    const nums = v as number[];
    return nums.every(Number.isInteger) ? { name, type: T.INTS, ints: nums } : { name, type: T.FLOATS, floats: nums };
  }
  switch (v.kind) {
    case 'float':
      return { name, type: T.FLOAT, f: v.value };
    case 'int':
      return { name, type: T.INT, i: v.value };
    case 'floats':
      return { name, type: T.FLOATS, floats: v.value };
    case 'ints':
      return { name, type: T.INTS, ints: v.value };
    case 'tensor':
      return { name, type: T.TENSOR, t: tensorProto('', v.value, v.dims, v.type) };
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): ValueInfoT {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE_CODE[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

export interface GraphBuilderOptions {
  name?: string;
  externalData?: ExternalDataOptions;
}

export class GraphBuilder {
  readonly name: string;
  private readonly inputs: ValueInfoT[] = [];
  private readonly outputs: ValueInfoT[] = [];
  private readonly initializers: TensorProtoT[] = [];
  private readonly nodes: NodeProtoT[] = [];
  private readonly defined = new Set<string>();
  private readonly used = new Set<string>();
  private counter = 0;
  private ext?: { dir: string; file: string; minBytes: number; align: number; fd: number; offset: number };
  private finished = false;

  constructor(opts: GraphBuilderOptions = {}) {
    this.name = opts.name ?? 'graph';
    if (opts.externalData) this.openExternal(opts.externalData);
  }

  private openExternal(o: ExternalDataOptions): void {
    const file = o.file ?? 'model.onnx.data';
    if (path.isAbsolute(file) || file.split(/[\\/]/).includes('..')) {
      throw new Error(`external data file must be a plain name inside the model folder, got ${file}`);
    }
    fs.mkdirSync(o.dir, { recursive: true });
    const fd = fs.openSync(path.join(o.dir, file), 'w');
    this.ext = { dir: o.dir, file, minBytes: o.minBytes ?? 1024, align: o.align ?? 64, fd, offset: 0 };
  }

  /** A name not used yet in this graph, from a readable prefix. */
  fresh(prefix = 't'): string {
    let n: string;
    do n = `${prefix}_${this.counter++}`;
    while (this.defined.has(n));
    return n;
  }

  private define(name: string): void {
    if (!name) throw new Error('empty tensor name');
    if (this.defined.has(name)) throw new Error(`tensor ${name} is defined twice`);
    this.defined.add(name);
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    this.define(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Declares a graph output; `name` must be produced by a node (or be an input/initializer). */
  output(name: string, type: ElemType, dims: Dim[]): string {
    this.outputs.push(valueInfo(name, type, dims));
    this.used.add(name);
    return name;
  }

  /**
   * Adds a weight. Large ones go straight to the external data file (when configured); the data is copied,
   * so the caller may drop or reuse its array right after.
   */
  initializer(name: string, data: InitializerData, dims: number[], opts: { type?: ElemType } = {}): string {
    if (this.finished) throw new Error('builder already finished');
    this.define(name);
    if (this.ext && data.byteLength >= this.ext.minBytes) {
      // Straight to disk from the caller's buffer: no copy of a possibly huge tensor stays in memory.
      const t = checkedType(name, data, dims, opts.type);
      this.initializers.push(this.writeExternal({ name, dims, dataType: ELEM_TYPE_CODE[t] }, bytesOf(data)));
    } else {
      this.initializers.push(tensorProto(name, data, dims, opts.type));
    }
    return name;
  }

  private writeExternal(t: TensorProtoT, bytes: Uint8Array): TensorProtoT {
    const e = this.ext!;
    const pad = (e.align - (e.offset % e.align)) % e.align;
    if (pad) {
      fs.writeSync(e.fd, Buffer.alloc(pad));
      e.offset += pad;
    }
    const at = e.offset;
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(e.fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
    e.offset += bytes.length;
    return {
      name: t.name,
      dims: t.dims,
      dataType: t.dataType,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: 'location', value: e.file },
        { key: 'offset', value: String(at) },
        { key: 'length', value: String(bytes.length) },
      ],
    };
  }

  /** A float32 constant (scalar when dims = []). */
  constF32(values: number[] | Float32Array, dims: number[] = values.length === 1 ? [] : [values.length], prefix = 'c'): string {
    return this.initializer(this.fresh(prefix), Float32Array.from(values), dims);
  }

  /** An int64 constant, e.g. shapes and axes for Reshape/Slice/Unsqueeze. */
  constI64(values: number[], dims: number[] = [values.length], prefix = 'i'): string {
    return this.initializer(this.fresh(prefix), BigInt64Array.from(values.map((v) => BigInt(v))), dims);
  }

  /**
   * Adds a node. `outputs` is a list of names or a count (names are generated). Returns the output names.
   * An empty string among the inputs marks an omitted optional input.
   */
  node(opType: string, inputs: string[], outputs: string[] | number = 1, attrs: Record<string, AttrValue | undefined> = {}, opts: { domain?: string; name?: string } = {}): string[] {
    if (this.finished) throw new Error('builder already finished');
    const outs = typeof outputs === 'number' ? Array.from({ length: outputs }, () => this.fresh(opType.toLowerCase())) : outputs;
    for (const i of inputs) {
      if (i && !this.defined.has(i)) throw new Error(`${opType} node: input ${i} is not defined yet`);
      if (i) this.used.add(i);
    }
    for (const o of outs) this.define(o);
    this.nodes.push({
      opType,
      input: inputs,
      output: outs,
      name: opts.name ?? this.fresh(`${opType}`),
      domain: opts.domain ?? '',
      attribute: Object.entries(attrs)
        .filter((e): e is [string, AttrValue] => e[1] !== undefined)
        .map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** A single-output node; returns its output name. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue | undefined> = {}, outputName?: string): string {
    return this.node(opType, inputs, outputName ? [outputName] : 1, attrs)[0];
  }

  /** Serializes the model (and closes the external data file). Call once. */
  toModel(opts: ToModelOptions): Uint8Array {
    if (this.finished) throw new Error('toModel() already called');
    if (opts.opset > MAX_OPSET) throw new Error(`opset ${opts.opset} is above what ONNX Runtime 1.30 supports (${MAX_OPSET})`);
    const ir = opts.irVersion ?? DEFAULT_IR_VERSION;
    if (ir > 13) throw new Error(`IR version ${ir} is above what ONNX Runtime 1.30 supports (13)`);
    for (const o of this.outputs) {
      if (!this.defined.has(o.name!)) throw new Error(`output ${o.name} is never produced`);
    }
    if (!this.ext && opts.externalDataDir) {
      // Late external data: move the big inline tensors out now.
      this.openExternal({ dir: opts.externalDataDir });
      for (let i = 0; i < this.initializers.length; i++) {
        const t = this.initializers[i];
        if (t.rawData && t.rawData.length >= this.ext!.minBytes) this.initializers[i] = this.writeExternal(t, t.rawData);
      }
    }
    if (this.ext) {
      fs.fsyncSync(this.ext.fd);
      fs.closeSync(this.ext.fd);
    }
    this.finished = true;
    const model = onnx.ModelProto.fromObject({
      irVersion: ir,
      producerName: opts.producerName ?? 'sparserm-studio',
      docString: opts.docString ?? '',
      opsetImport: [{ domain: '', version: opts.opset }, ...Object.entries(this.opsetsUsed(opts.extraOpsets)).map(([domain, version]) => ({ domain, version }))],
      metadataProps: Object.entries(opts.metadata ?? {}).map(([key, value]) => ({ key, value })),
      graph: {
        name: this.name,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
        node: this.nodes,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  /** extraOpsets plus version 1 of any other domain a node uses (e.g. com.microsoft for MatMulNBits), so emitters need not tell the model's author. */
  private opsetsUsed(extra: Record<string, number> = {}): Record<string, number> {
    const all = { ...extra };
    for (const n of this.nodes) if (n.domain && all[n.domain] === undefined) all[n.domain] = 1;
    return all;
  }

  /** Gives up on this build: closes the external data file (the caller removes the folder). Idempotent. */
  abort(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.ext) fs.closeSync(this.ext.fd);
  }

  /** Number of nodes so far (for tests and docs). */
  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Path of the external data file, if any. */
  get externalDataPath(): string | undefined {
    return this.ext ? path.join(this.ext.dir, this.ext.file) : undefined;
  }
}

/** Writes model bytes atomically (temp + rename) so a reader never sees a half-written model. */
export function saveModel(file: string, bytes: Uint8Array): void {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}
