// Package logging provides the SDK's [log/slog] handler: JSON records on an
// [io.Writer] enriched with the active span's trace and span ids and the
// service name, with sensitive attributes redacted, optional per-message
// sampling, and a fan-out to a second handler (typically the OpenTelemetry
// otelslog bridge) that receives the same redacted records.
//
// Services that log through go.uber.org/zap get the identical pipeline via
// [NewZapCore], which turns zap entries into slog records on a handler.
//
// Order of operations for every record: level check ([Handler.Enabled]),
// sampling (records below [slog.LevelWarn] only), redaction, then the JSON
// output and the export handler. Redaction happens before the fan-out so no
// exporter ever sees a secret the local output would have hidden.
//
// The JSON is written by the package's own append-style encoder rather than
// by [slog.JSONHandler]: delegating cost a second record and slog's generic
// formatting state per call, several times the cost of zap's encoder. The
// output is byte-for-byte what slog's JSON handler writes (tests compare the
// two), so nothing downstream can tell the difference.
package logging
