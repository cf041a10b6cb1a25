package logging

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// tenFields is the benchmark payload shared by the slog and zap variants.
func tenFields() []any {
	return []any{
		"method", "GET", "path", "/api/v1/orders", "status", 200,
		"duration", 1500 * time.Microsecond, "bytes", 5120, "user_id", "u-42",
		"retry", false, "ratio", 0.75, "region", "eu-west-1", "err", errors.New("none"),
	}
}

func BenchmarkHandler(b *testing.B) {
	spanCtx, _ := spanContext(b)
	cases := []struct {
		name string
		ctx  context.Context
		opts Options
	}{
		{name: "no-span", ctx: context.Background(), opts: Options{Service: "svc"}},
		{name: "span", ctx: spanCtx, opts: Options{Service: "svc"}},
		{name: "span+export", ctx: spanCtx, opts: Options{Service: "svc", Export: slog.NewJSONHandler(io.Discard, nil)}},
		{name: "sampled-out", ctx: spanCtx, opts: Options{Service: "svc", Sampling: &Sampling{First: 1, Tick: time.Hour}}},
	}
	fields := tenFields()
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			logger := slog.New(NewHandler(io.Discard, bc.opts))
			b.ReportAllocs()
			for b.Loop() {
				logger.InfoContext(bc.ctx, "request served", fields...)
			}
		})
	}
}

func BenchmarkZapCore(b *testing.B) {
	spanCtx, _ := spanContext(b)
	logger := zap.New(NewZapCore(NewHandler(io.Discard, Options{Service: "svc"}), zapcore.InfoLevel))
	b.ReportAllocs()
	for b.Loop() {
		logger.Info("request served", Context(spanCtx),
			zap.String("method", "GET"), zap.String("path", "/api/v1/orders"), zap.Int("status", 200),
			zap.Duration("duration", 1500*time.Microsecond), zap.Int("bytes", 5120), zap.String("user_id", "u-42"),
			zap.Bool("retry", false), zap.Float64("ratio", 0.75), zap.String("region", "eu-west-1"),
			zap.Error(errors.New("none")))
	}
}
