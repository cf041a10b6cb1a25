// Package benchmarks compares the SDK's pieces with what a service would
// otherwise use: the logging handler against zap's JSON core and slog's own
// JSON handler, and the HTTP middleware against otelhttp alone and otelhttp
// plus promhttp instrumentation. It is its own module so that the rivals
// never become dependencies of the SDK.
package benchmarks
