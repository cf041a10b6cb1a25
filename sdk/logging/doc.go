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
// handler and the export handler. Redaction happens before the fan-out so no
// exporter ever sees a secret the local output would have hidden.
package logging
