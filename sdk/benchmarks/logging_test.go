package benchmarks

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/vigil-observability/vigil/sdk/logging"
)

// The same message with ten fields for every logger.
var errBench = io.ErrUnexpectedEOF

func slogArgs() []any {
	return []any{
		"order_id", 123456, "customer", "c-00042", "amount", 99.95, "currency", "EUR",
		"items", 3, "express", true, "latency", 42 * time.Millisecond, "region", "eu-west-1",
		"attempt", 2, "err", errBench,
	}
}

func zapFields() []zap.Field {
	return []zap.Field{
		zap.Int("order_id", 123456), zap.String("customer", "c-00042"), zap.Float64("amount", 99.95),
		zap.String("currency", "EUR"), zap.Int("items", 3), zap.Bool("express", true),
		zap.Duration("latency", 42*time.Millisecond), zap.String("region", "eu-west-1"),
		zap.Int("attempt", 2), zap.Error(errBench),
	}
}

// spanContext returns a context carrying a recording span, as a request
// handler's context does.
func spanContext(b *testing.B) context.Context {
	tp := sdktrace.NewTracerProvider()
	b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, span := tp.Tracer("bench").Start(context.Background(), "op")
	b.Cleanup(func() { span.End() })
	return ctx
}

func BenchmarkLog10Fields(b *testing.B) {
	b.Run("vigil", func(b *testing.B) {
		l := slog.New(logging.NewHandler(io.Discard, logging.Options{Service: "bench"}))
		b.ReportAllocs()
		for b.Loop() {
			l.Info("order placed", slogArgs()...)
		}
	})
	b.Run("vigil+span", func(b *testing.B) {
		l := slog.New(logging.NewHandler(io.Discard, logging.Options{Service: "bench"}))
		ctx := spanContext(b)
		b.ReportAllocs()
		for b.Loop() {
			l.InfoContext(ctx, "order placed", slogArgs()...)
		}
	})
	b.Run("slog-json", func(b *testing.B) {
		l := slog.New(slog.NewJSONHandler(io.Discard, nil))
		b.ReportAllocs()
		for b.Loop() {
			l.Info("order placed", slogArgs()...)
		}
	})
	b.Run("zap-json", func(b *testing.B) {
		enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
		l := zap.New(zapcore.NewCore(enc, zapcore.AddSync(io.Discard), zapcore.InfoLevel))
		b.ReportAllocs()
		for b.Loop() {
			l.Info("order placed", zapFields()...)
		}
	})
}
