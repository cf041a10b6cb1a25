package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/vigil-observability/vigil/examples/shop"
	"github.com/vigil-observability/vigil/internal/selfobs"
)

// faultFlags collects repeated --fault flags.
type faultFlags []string

func (f *faultFlags) String() string { return strings.Join(*f, ",") }

func (f *faultFlags) Set(v string) error {
	*f = append(*f, v)
	return nil
}

func runDemo(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("vigil demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		opts   shop.Options
		faults faultFlags
	)
	fs.StringVar(&opts.OTLPEndpoint, "otlp-endpoint", "localhost:4317", "where the shop's services send OTLP (a vigil server)")
	fs.StringVar(&opts.Protocol, "otlp-protocol", "grpc", "grpc or http/protobuf")
	fs.StringVar(&opts.ConfigURL, "vigil-url", "http://localhost:7070", "vigil's API, whose configuration centre holds the payments settings (shop/payments/settings; seeded if missing); empty: $VIGIL_URL, else none (defaults)")
	fs.IntVar(&opts.PortBase, "port-base", 8081, "gateway port; catalog, orders and payments take the next three")
	fs.Float64Var(&opts.RPS, "rps", 5, "requests per second the load generator sends to the gateway (0: none)")
	fs.BoolVar(&opts.Profiling, "profiling", true, "send the services' continuous profiles (CPU, memory, goroutines) to vigil at --vigil-url; off when that is empty")
	var help strings.Builder
	for _, f := range shop.Faults() {
		fmt.Fprintf(&help, "\n  %s: %s", f, shop.FaultHelp(f))
	}
	fs.Var(&faults, "fault", "a failure to reproduce (repeatable):"+help.String())
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	opts.Faults = faults
	opts.Logger = selfobs.NewLogger(stderr, 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := shop.Run(ctx, opts); err != nil {
		fmt.Fprintf(stderr, "vigil demo: %v\n", err)
		switch {
		case errors.Is(err, shop.ErrUnknownFault), errors.Is(err, shop.ErrNoConfigCentre):
			return 2
		case errors.Is(err, shop.ErrListen):
			// Typically the demo `make run` started holds these ports.
			base := opts.PortBase
			if base == 0 {
				base = shop.DefaultPortBase
			}
			fmt.Fprintf(stderr, "vigil demo: the demo listens on ports %d-%d (--port-base and the next three); "+
				"stop what uses them or pick others, e.g. --port-base %d\n", base, base+3, base+100)
		}
		return 1
	}
	return 0
}
