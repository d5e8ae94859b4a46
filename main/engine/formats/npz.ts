/**
 * NumPy `.npz` (zip of `.npy`): the public names, kept in one place so importers need not know the split.
 * npy.ts: `.npy` dtypes, header, decoding; zip-reader.ts: the bounded zip central directory reader (zip64,
 * hostile-file checks); npz-reader.ts: openNpz / readNpz, one entry at a time; npz-writer.ts: writeNpz.
 */
export { decodeNpy, fortranToC, npyHeaderBytes, npyHeaderEnd, parseNpyHeader } from './npy';
export type { NpyArray, NpyData, NpyDtype, NpyHeader } from './npy';
export type { NpzEntryInfo } from './zip-reader';
export { openNpz, readNpz } from './npz-reader';
export type { NpzFile, NpzReadOptions } from './npz-reader';
export { writeNpz } from './npz-writer';
export type { NpzWriteArray, WriteNpzOptions } from './npz-writer';
