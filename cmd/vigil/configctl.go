package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/configcentre/configapi"
)

const configUsage = `Usage:
  vigil config get NS/GROUP/KEY [--instance ID] [--label NAME=VALUE]... [--output content|json]
  vigil config put NS/GROUP/KEY [--file F] [--type text|json|yaml]
  vigil config gray NS/GROUP/KEY [--file F] (--labels N=V,... | --instances ID,... | --percent N) [--guard JSON]
  vigil config promote|abort NS/GROUP/KEY
  vigil config rollback NS/GROUP/KEY --version N
  vigil config history NS/GROUP/KEY [--output text|json]
  vigil config schema NS/GROUP/KEY [--file F | --show | --delete]

Reads and changes the configuration centre of a running server
(docs/config-centre.md). put and gray read the content from --file, or
from standard input; put's type defaults to the file's extension (.json,
.yaml, .yml), else text. schema sets the item's JSON Schema (from --file
or standard input), which every content written after must match. Writes carry --author (default $USER) and
--message. Each command takes --server, --bearer-token-file,
--basic-auth-user with --basic-auth-password-file, --ca-file and
--timeout (vigil config <command> -h).
`

// runConfig is vigil config. It exits 2 on a usage error, 1 when the
// server could not be asked or refused.
func runConfig(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	const reader, writer = "ingest, read, config or admin", "config (or admin)"
	cmd, role, code, done := subcommand("vigil config", configUsage, args, stderr, map[string]string{
		"get": reader, "history": reader,
		"put": writer, "gray": writer, "promote": writer, "abort": writer, "rollback": writer, "schema": writer,
	})
	if done {
		return code
	}
	fs, sf, timeout := apiFlagSet("vigil config "+cmd, role, stderr, 30*time.Second, "how long the request may take")
	author := fs.String("author", os.Getenv("USER"), "the write's author, kept in the history")
	message := fs.String("message", "", "the write's message, kept in the history")
	var (
		output, file, typ, instance, labels, instances, guard string
		labelList                                             multiFlag
		percent                                               int
		version                                               uint64
	)
	switch cmd {
	case "get":
		fs.StringVar(&output, "output", "content", "content (the value alone) or json (the API's data)")
		fs.StringVar(&instance, "instance", "", "the instance id to resolve the value for")
		fs.Var(&labelList, "label", "an instance label NAME=VALUE (repeatable)")
	case "history":
		fs.StringVar(&output, "output", "text", "text or json (the API's data)")
	case "put", "gray":
		fs.StringVar(&file, "file", "", "the content's file (default: standard input)")
		fs.StringVar(&typ, "type", "", "text, json or yaml (default: from --file's extension; for gray, the formal version's)")
	}
	if cmd == "gray" {
		fs.StringVar(&labels, "labels", "", "match instances with these labels: NAME=VALUE,...")
		fs.StringVar(&instances, "instances", "", "match these instance ids: ID,...")
		fs.IntVar(&percent, "percent", 0, "match this percentage of instances, 0 to 100, by a stable hash of their id")
		fs.StringVar(&guard, "guard", "", `the gray's guard, as JSON: {"slo": "<service>/<name>"} or {"promql": "<expression, non-empty when the gray is bad>"}; a breach aborts the gray`)
	}
	if cmd == "rollback" {
		fs.Uint64Var(&version, "version", 0, "the version to republish")
	}
	var show, del bool
	if cmd == "schema" {
		fs.StringVar(&file, "file", "", "the JSON Schema's file (default: standard input)")
		fs.BoolVar(&show, "show", false, "print the item's schema instead of setting it")
		fs.BoolVar(&del, "delete", false, "remove the item's schema")
	}
	// The item may come before the flags or after them.
	var itemArg string
	rest := args[1:]
	if len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		itemArg, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usageErr := func(msg string) int {
		fmt.Fprintf(stderr, "vigil config %s: %s\n", cmd, msg)
		return 2
	}
	if itemArg == "" && fs.NArg() > 0 {
		// Flags, the item, then maybe more flags.
		itemArg = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
	}
	if fs.NArg() > 0 {
		return usageErr(fmt.Sprintf("unexpected arguments: %v", fs.Args()))
	}
	if itemArg == "" {
		return usageErr("which item? give NS/GROUP/KEY")
	}
	item, err := configapi.ParseItem(itemArg)
	if err != nil {
		return usageErr(err.Error())
	}
	hc, err := sf.client("vigil-config", *timeout)
	if err != nil {
		return usageErr(err.Error())
	}
	c := &configapi.Client{URL: sf.server, HTTP: hc, Author: *author, Message: *message}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	fail := func(err error) int {
		fmt.Fprintf(stderr, "vigil config %s %s: %v\n", cmd, item, err)
		return 1
	}
	content := func() ([]byte, error) {
		if file == "" {
			return io.ReadAll(io.LimitReader(stdin, configcentre.MaxContentBytes+1))
		}
		return os.ReadFile(file)
	}
	printResult := func(r configcentre.Result, err error) int {
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s: version %d (md5 %s)\n", item, r.Version, r.MD5)
		return 0
	}

	switch cmd {
	case "get":
		if output != "content" && output != "json" {
			return usageErr(fmt.Sprintf("--output must be content or json, not %q", output))
		}
		ls, err := parsePairs(labelList)
		if err != nil {
			return usageErr("--label: " + err.Error())
		}
		r, err := c.Get(ctx, item, instance, ls)
		if err != nil {
			return fail(err)
		}
		if output == "json" {
			return writeJSONOut(stdout, stderr, r)
		}
		_, _ = io.WriteString(stdout, r.Content)
		return 0
	case "put":
		t := configcentre.ContentType(typ)
		if t == "" {
			t = typeOfFile(file)
		}
		b, err := content()
		if err != nil {
			return fail(err)
		}
		return printResult(c.Put(ctx, item, t, b))
	case "gray":
		var m configcentre.Match
		if labels != "" {
			if m.Labels, err = parsePairs(strings.Split(labels, ",")); err != nil {
				return usageErr("--labels: " + err.Error())
			}
		}
		if instances != "" {
			m.Instances = strings.Split(instances, ",")
		}
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "percent" {
				p := percent
				m.Percent = &p
			}
		})
		b, err := content()
		if err != nil {
			return fail(err)
		}
		g := configapi.GrayRequest{Content: string(b), Match: m, ContentType: configcentre.ContentType(typ)}
		if guard != "" {
			if !json.Valid([]byte(guard)) {
				return usageErr("--guard is not JSON")
			}
			g.Guard = json.RawMessage(guard)
		}
		return printResult(c.Gray(ctx, item, g))
	case "promote":
		return printResult(c.Promote(ctx, item))
	case "abort":
		return printResult(c.Abort(ctx, item))
	case "rollback":
		if version == 0 {
			return usageErr("--version is required: a version number from vigil config history")
		}
		return printResult(c.Rollback(ctx, item, version))
	case "schema":
		switch {
		case show && del:
			return usageErr("--show and --delete together")
		case show:
			raw, err := c.Schema(ctx, item)
			if err != nil {
				return fail(err)
			}
			return writeJSONOut(stdout, stderr, raw)
		case del:
			if _, err := c.DeleteSchema(ctx, item); err != nil {
				return fail(err)
			}
			fmt.Fprintf(stdout, "%s: schema removed\n", item)
			return 0
		}
		b, err := content()
		if err != nil {
			return fail(err)
		}
		// The answer's md5 is the schema's and its version the item's
		// formal one, which the schema was checked against.
		r, err := c.SetSchema(ctx, item, b)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s: schema set (md5 %s)", item, r.MD5)
		if r.Version != 0 {
			fmt.Fprintf(stdout, "; the formal version %d matches it", r.Version)
		}
		fmt.Fprintln(stdout)
		return 0
	case "history":
		if output != "text" && output != "json" {
			return usageErr(fmt.Sprintf("--output must be text or json, not %q", output))
		}
		h, err := c.History(ctx, item)
		if err != nil {
			return fail(err)
		}
		if output == "json" {
			return writeJSONOut(stdout, stderr, h)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tSTATE\tACTION\tAUTHOR\tTIME\tMD5\tMESSAGE")
		for _, v := range h {
			state := "-"
			switch {
			case v.Formal:
				state = "formal"
			case v.Active:
				state = "gray"
			}
			action := v.Action
			if v.From != 0 {
				action += " of " + strconv.FormatUint(v.From, 10)
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Version.Version, state, action, v.Author,
				v.Time.UTC().Format(time.RFC3339), v.MD5, v.Message)
		}
		if err := tw.Flush(); err != nil {
			return fail(err)
		}
	}
	return 0
}

// typeOfFile is a put's content type from its file's extension.
func typeOfFile(name string) configcentre.ContentType {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".json":
		return configcentre.TypeJSON
	case ".yaml", ".yml":
		return configcentre.TypeYAML
	}
	return configcentre.TypeText
}

// parsePairs reads NAME=VALUE pairs.
func parsePairs(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range pairs {
		n, v, ok := strings.Cut(p, "=")
		if !ok || n == "" {
			return nil, fmt.Errorf("%q: want NAME=VALUE", p)
		}
		out[n] = v
	}
	return out, nil
}

func writeJSONOut(stdout, stderr io.Writer, v any) int {
	b, err := json.MarshalIndent(v, "", "  ")
	if err == nil {
		_, err = fmt.Fprintf(stdout, "%s\n", b)
	}
	if err != nil {
		fmt.Fprintf(stderr, "vigil config: %v\n", err)
		return 1
	}
	return 0
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }
