export { importFile, type ImportOptions, type ImportResult } from './import';
export { OutputExistsError, removeStaleTempFiles } from './atomic';
export { exportDataset, exportRecord, toolVersion, checkExportTargets, type ExportOptions, type ExportResult, type ExportFormat, type ExportCounts } from './export';
export { importLabels, parseNeuronpediaRow, type LabelImportOptions, type LabelImportResult } from './labels';
export { FORMATS, type FormatName, detectFormat, detectRowFormat, normalizeRow, messagesToText, textToPromptMessages, splitImplicitPrompt, RowError } from './formats';
export { SourceReader, inspectSource } from './source';
export { contentHash, sha256File } from './hash';
export { registerDataJobs, ImportJobParams, ExportJobParams } from './jobs';
