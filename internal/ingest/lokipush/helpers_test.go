package lokipush

import (
	"fmt"
	"strings"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// The builders below write logproto messages by hand, as an agent's
// generated code would put them on the wire.

type pbEntry struct {
	sec, nsec int64
	line      string
	metadata  []Label
	unknown   bool // add a field this decoder does not know
}

type pbStream struct {
	labels  string
	entries []pbEntry
	hash    uint64
}

func pbPush(streams ...pbStream) []byte {
	var b []byte
	for _, s := range streams {
		b = protowire.AppendTag(b, fieldPushStreams, protowire.BytesType)
		b = protowire.AppendBytes(b, pbStreamBytes(s))
	}
	return b
}

func pbStreamBytes(s pbStream) []byte {
	var b []byte
	// Entries first and labels last: the wire allows any order.
	for _, e := range s.entries {
		b = protowire.AppendTag(b, fieldStreamEntries, protowire.BytesType)
		b = protowire.AppendBytes(b, pbEntryBytes(e))
	}
	if s.labels != "" { // proto3 leaves an empty string out
		b = protowire.AppendTag(b, fieldStreamLabels, protowire.BytesType)
		b = protowire.AppendString(b, s.labels)
	}
	if s.hash != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, s.hash)
	}
	return b
}

func pbEntryBytes(e pbEntry) []byte {
	var ts []byte
	ts = protowire.AppendTag(ts, fieldTimestampSeconds, protowire.VarintType)
	ts = protowire.AppendVarint(ts, uint64(e.sec))
	if e.nsec != 0 {
		ts = protowire.AppendTag(ts, fieldTimestampNanos, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(e.nsec))
	}
	var b []byte
	b = protowire.AppendTag(b, fieldEntryTimestamp, protowire.BytesType)
	b = protowire.AppendBytes(b, ts)
	b = protowire.AppendTag(b, fieldEntryLine, protowire.BytesType)
	b = protowire.AppendString(b, e.line)
	for _, m := range e.metadata {
		var p []byte
		p = protowire.AppendTag(p, fieldPairName, protowire.BytesType)
		p = protowire.AppendString(p, m.Name)
		p = protowire.AppendTag(p, fieldPairValue, protowire.BytesType)
		p = protowire.AppendString(p, m.Value)
		b = protowire.AppendTag(b, fieldEntryMetadata, protowire.BytesType)
		b = protowire.AppendBytes(b, p)
	}
	if e.unknown {
		b = protowire.AppendTag(b, 15, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, 42)
		b = protowire.AppendTag(b, 16, protowire.BytesType)
		b = protowire.AppendString(b, "future field")
	}
	return b
}

func snappyPush(streams ...pbStream) []byte {
	return snappy.Encode(nil, pbPush(streams...))
}

// dump prints a Result for golden files.
func dump(res *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "entries=%d rejected=%d repaired=%d\n", res.Entries, res.Rejected(), res.Repaired)
	for _, s := range res.Streams {
		fmt.Fprintf(&b, "stream %s\n", labelString(s.Labels))
		for _, e := range s.Entries {
			fmt.Fprintf(&b, "  %s %q", e.Time.UTC().Format(time.RFC3339Nano), e.Line)
			if len(e.Metadata) > 0 {
				fmt.Fprintf(&b, " %s", labelString(e.Metadata))
			}
			b.WriteByte('\n')
		}
	}
	for _, rj := range res.Rejections() {
		fmt.Fprintf(&b, "rejected %s: %d (%s)\n", rj.Reason, rj.Entries, rj.Example)
	}
	return b.String()
}
