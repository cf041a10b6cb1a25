package lokipush

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of Loki's logproto messages (push.proto); the names are
// the wire format's, the numbers are what the decoder reads.
const (
	fieldPushStreams = 1 // PushRequest.streams: StreamAdapter

	fieldStreamLabels  = 1 // StreamAdapter.labels: string
	fieldStreamEntries = 2 // StreamAdapter.entries: EntryAdapter

	fieldEntryTimestamp = 1 // EntryAdapter.timestamp: google.protobuf.Timestamp
	fieldEntryLine      = 2 // EntryAdapter.line: string
	fieldEntryMetadata  = 3 // EntryAdapter.structuredMetadata: LabelPairAdapter

	fieldPairName  = 1
	fieldPairValue = 2

	fieldTimestampSeconds = 1
	fieldTimestampNanos   = 2
)

var (
	errTruncated    = errors.New("truncated or malformed protobuf")
	errBadTimestamp = errors.New("bad timestamp")
)

func (d *Decoder) decodeProto(body []byte) (*Result, error) {
	// DecodedLen only reads the varint in front of the block: checking it
	// first makes a small body claiming a huge output cost nothing.
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", ErrMalformed, err)
	}
	if max := d.opts.MaxDecodedBytes; max > 0 && n > max {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrTooLarge, n, max)
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", ErrMalformed, err)
	}
	return d.decodePushRequest(raw)
}

// wireBuf gives the strings of a decoded message as substrings of one copy
// of the whole buffer: one allocation per request instead of one per line
// and label.
type wireBuf struct {
	raw []byte
	str string
}

// sub returns v, a subslice of w.raw, as a string.
func (w *wireBuf) sub(v []byte) string {
	off := cap(w.raw) - cap(v)
	return w.str[off : off+len(v)]
}

func (d *Decoder) decodePushRequest(raw []byte) (*Result, error) {
	b := d.newBatch()
	w := &wireBuf{raw: raw, str: string(raw)}
	streams := 0
	for msg := raw; len(msg) > 0; {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, errTruncated)
		}
		msg = msg[n:]
		if num == fieldPushStreams && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return nil, fmt.Errorf("%w: %w", ErrMalformed, errTruncated)
			}
			msg = msg[n:]
			b.protoStream(w, v, streams)
			streams++
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, errTruncated)
		}
		msg = msg[n:]
	}
	return b.res, nil
}

// protoStream decodes one StreamAdapter. Its fields may come in any order,
// so a first pass finds the labels and checks the framing, a second
// decodes the entries.
func (b *batch) protoStream(w *wireBuf, msg []byte, index int) {
	var labelStr string
	hasLabels := false
	// desc names the stream in rejections; called on those paths only.
	desc := func() string {
		if hasLabels {
			return labelStr
		}
		return fmt.Sprintf("#%d", index)
	}
	entries := 0
	for m := msg; len(m) > 0; {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			b.res.reject(ReasonMalformed, max(entries, 1), "stream %s: %v", desc(), errTruncated)
			return
		}
		m = m[n:]
		n = protowire.ConsumeFieldValue(num, typ, m)
		if n < 0 {
			b.res.reject(ReasonMalformed, max(entries, 1), "stream %s: %v", desc(), errTruncated)
			return
		}
		if typ == protowire.BytesType {
			switch num {
			case fieldStreamLabels:
				v, _ := protowire.ConsumeBytes(m)
				labelStr = w.sub(v)
				hasLabels = true
			case fieldStreamEntries:
				entries++
			}
		}
		m = m[n:]
	}
	ls, reason, err := b.labels(labelStr)
	if err != nil {
		b.res.reject(reason, entries, "stream %s: %v", desc(), err)
		return
	}
	s := Stream{Labels: ls, Entries: make([]Entry, 0, min(entries, max(b.d.opts.MaxEntries-b.res.Entries, 0)))}
	for m := msg; len(m) > 0; {
		num, typ, n := protowire.ConsumeTag(m)
		m = m[n:]
		n = protowire.ConsumeFieldValue(num, typ, m)
		if num == fieldStreamEntries && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(m)
			e, err := protoEntry(w, v)
			switch {
			case errors.Is(err, errBadTimestamp):
				b.res.reject(ReasonBadTimestamp, 1, "stream %s: entry: %v", labelStr, err)
			case err != nil:
				b.res.reject(ReasonMalformed, 1, "stream %s: entry: %v", labelStr, err)
			case b.keep(labelStr, &e):
				s.Entries = append(s.Entries, e)
			}
		}
		m = m[n:]
	}
	if len(s.Entries) > 0 {
		b.res.Streams = append(b.res.Streams, s)
	}
}

func protoEntry(w *wireBuf, msg []byte) (Entry, error) {
	var e Entry
	var sec, nsec int64
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return e, errTruncated
		}
		msg = msg[n:]
		if typ == protowire.BytesType && (num == fieldEntryTimestamp || num == fieldEntryLine || num == fieldEntryMetadata) {
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return e, errTruncated
			}
			msg = msg[n:]
			switch num {
			case fieldEntryTimestamp:
				var err error
				if sec, nsec, err = protoTimestamp(v); err != nil {
					return e, err
				}
			case fieldEntryLine:
				e.Line = w.sub(v)
			case fieldEntryMetadata:
				l, err := protoPair(w, v)
				if err != nil {
					return e, err
				}
				e.Metadata = append(e.Metadata, l)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return e, errTruncated
		}
		msg = msg[n:]
	}
	e.Time = time.Unix(sec, nsec).UTC()
	return e, nil
}

func protoTimestamp(msg []byte) (sec, nsec int64, err error) {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return 0, 0, errTruncated
		}
		msg = msg[n:]
		if typ == protowire.VarintType && (num == fieldTimestampSeconds || num == fieldTimestampNanos) {
			v, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return 0, 0, errTruncated
			}
			msg = msg[n:]
			if num == fieldTimestampSeconds {
				sec = int64(v)
			} else {
				nsec = int64(int32(v))
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return 0, 0, errTruncated
		}
		msg = msg[n:]
	}
	if nsec < 0 || nsec >= 1e9 {
		return 0, 0, fmt.Errorf("%w: nanos %d out of range", errBadTimestamp, nsec)
	}
	return sec, nsec, nil
}

func protoPair(w *wireBuf, msg []byte) (Label, error) {
	var l Label
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return l, errTruncated
		}
		msg = msg[n:]
		if typ == protowire.BytesType && (num == fieldPairName || num == fieldPairValue) {
			v, n := protowire.ConsumeBytes(msg)
			if n < 0 {
				return l, errTruncated
			}
			msg = msg[n:]
			if num == fieldPairName {
				l.Name = w.sub(v)
			} else {
				l.Value = w.sub(v)
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, msg)
		if n < 0 {
			return l, errTruncated
		}
		msg = msg[n:]
	}
	return l, nil
}
