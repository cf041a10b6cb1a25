package promremote

import (
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
)

// batch is one request decoded from the wire into buffers that are reused
// from request to request (batchPool), instead of one prompb struct per
// series, label and sample. Series that carry only labels and float
// samples, which is what Prometheus sends for every classic metric, stay
// as byte ranges of the inflated body; the rare series with exemplars or
// native histograms are unmarshalled into prompb.TimeSeries.
type batch struct {
	body     []byte // the compressed body as read
	raw      []byte // the inflated body; wireSeries.labels point into it
	series   []wireSeries
	samples  []prompb.Sample
	full     []prompb.TimeSeries
	metadata []prompb.MetricMetadata
	// hits holds what the series cache knows of each series (lookup),
	// order the series' indexes by cache shard.
	hits  []seriesHit
	order []int32
	// learned holds the series to cache once the request is committed.
	learned []learnedSeries
	// messages counts the messages decoded, and charge what they are
	// estimated to cost, as the decode budget sees it (see charge).
	messages int64
	charge   decodeCharge
}

// decodeCharge is the decode budget's reservation for one body, charged
// as the hand decoder meets each message, before what it decodes to is
// held. Each message is charged decodecost.PerMessage and the body twice
// its size, as decodecost.Shape.Cost estimates a body walked without its
// schema; decoding by the schema needs no such walk first, which cost
// about a quarter of the server's CPU under remote_write load.
type decodeCharge struct {
	res *decodecost.Reservation // nil charges nothing
	// cost is the estimate so far; held what res holds, grown in steps
	// of chargeAhead so that the budget's lock is taken a few times per
	// request and not once per message.
	cost, held int64
	// most bounds the estimate for the whole body, and size is the
	// budget's: held never grows past either.
	most, size int64
}

// chargeAhead is how far a decode's reservation grows past its estimate.
const chargeAhead = 1 << 20

// errNested refuses a body nesting messages deeper than any WriteRequest.
var errNested = errors.New("nested too deep")

// add charges n more bytes, reserving them (and up to chargeAhead more)
// when what is held does not cover them. It fails with the reservation's
// error (decodecost.ErrTooLarge or ErrBusy).
func (c *decodeCharge) add(n int64) error {
	c.cost += n
	if c.cost <= c.held || c.res == nil {
		return nil
	}
	want := max(c.cost, min(c.cost+chargeAhead, c.most, c.size))
	err := c.res.Resize(want)
	if errors.Is(err, decodecost.ErrBusy) && want > c.cost {
		// What the budget has left may still cover the estimate itself.
		want = c.cost
		err = c.res.Resize(want)
	}
	if err != nil {
		return err
	}
	c.held = want
	return nil
}

// message charges one decoded message.
func (b *batch) message() error {
	b.messages++
	return b.charge.add(decodecost.PerMessage)
}

// general charges a message that a general decoder (prompb) will decode:
// its shape, walked without the schema as the whole body once was, at the
// field numbers of path. It also refuses nesting past maxNesting, which
// bounds that decoder's recursion.
func (b *batch) general(msg []byte, path ...protowire.Number) error {
	shape := decodecost.ProtoPackedAt(msg, path, maxNesting, decodecost.RemoteWritePacked)
	if shape.Depth > maxNesting {
		return errNested
	}
	b.messages += 1 + shape.Messages
	return b.charge.add(decodecost.PerMessage*(1+shape.Messages) + decodecost.PerScalar*shape.Scalars)
}

// wireSeries is one TimeSeries of a batch.
type wireSeries struct {
	// labels holds the series' Label fields as they were sent (tags and
	// lengths included), which is what the series cache is keyed by.
	// Unset for a full series.
	labels []byte
	// samples is batch.samples[first:end].
	first, end int
	// full is the index of the series in batch.full, or -1.
	full int
}

// maxPooledBytes keeps a batch whose buffers grew for an unusually large
// request out of the pool, so that one such request does not pin its
// memory for the life of the process.
const maxPooledBytes = 8 << 20

var batchPool = sync.Pool{New: func() any { return new(batch) }}

func getBatch() *batch { return batchPool.Get().(*batch) }

func putBatch(b *batch) {
	if cap(b.raw)+cap(b.body) > maxPooledBytes || cap(b.series) > 1<<16 || cap(b.samples) > 1<<17 {
		return
	}
	b.body, b.raw = b.body[:0], b.raw[:0]
	b.series, b.samples = b.series[:0], b.samples[:0]
	clear(b.full) // drops references to decoded labels and exemplars
	b.full = b.full[:0]
	clear(b.metadata)
	b.metadata = b.metadata[:0]
	clear(b.hits) // drops references to cached labels
	b.hits, b.order = b.hits[:0], b.order[:0]
	clear(b.learned)
	b.learned = b.learned[:0]
	b.messages, b.charge = 0, decodeCharge{}
	batchPool.Put(b)
}

var errWire = errors.New("malformed protobuf")

// unmarshal decodes a prometheus.WriteRequest from b.raw, charging res
// (nil: no budget) for what it decodes (see decodeCharge) before it holds
// it. It accepts what prompb.WriteRequest.Unmarshal accepts: unknown
// fields are skipped, a known field with the wrong wire type or a
// truncated field is an error. Where the hand decoder is stricter than
// prompb (prompb skips groups without matching their field numbers),
// prompb decides. A budget refusal is returned as the reservation's
// error, a body nesting past maxNesting as errNested.
func (b *batch) unmarshal(res *decodecost.Reservation) error {
	b.messages = 0
	b.charge = decodeCharge{res: res, cost: 0, most: decodecost.MaxCost(len(b.raw)), size: math.MaxInt64}
	if res != nil {
		b.charge.held = res.Held()
		b.charge.size = res.Size()
	}
	if err := b.charge.add(2 * int64(len(b.raw))); err != nil {
		return err
	}
	err := b.unmarshalWire()
	if err == nil || errors.Is(err, errNested) || errors.Is(err, decodecost.ErrTooLarge) || errors.Is(err, decodecost.ErrBusy) {
		return err
	}
	// The general decoder for the whole body: charged as the schema-less
	// walk estimates it.
	b.messages = 0
	b.charge.cost = 2 * int64(len(b.raw))
	if gerr := b.general(b.raw); gerr != nil {
		return gerr
	}
	var req prompb.WriteRequest
	if req.Unmarshal(b.raw) != nil {
		return err
	}
	b.series, b.samples = b.series[:0], b.samples[:0]
	b.full, b.metadata = req.Timeseries, req.Metadata
	for i := range b.full {
		b.series = append(b.series, wireSeries{full: i})
	}
	return nil
}

func (b *batch) unmarshalWire() error {
	buf := b.raw
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return errWire
		}
		buf = buf[n:]
		if num != 1 && num != 3 {
			n = protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return errWire
			}
			buf = buf[n:]
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w: field %d has wire type %d", errWire, num, typ)
		}
		msg, n := protowire.ConsumeBytes(buf)
		if n < 0 {
			return errWire
		}
		buf = buf[n:]
		if num == 3 {
			if err := b.general(msg, 3); err != nil {
				return err
			}
			var m prompb.MetricMetadata
			if err := m.Unmarshal(msg); err != nil {
				return err
			}
			b.metadata = append(b.metadata, m)
			continue
		}
		if err := b.message(); err != nil {
			return err
		}
		if err := b.addSeries(msg); err != nil {
			return err
		}
	}
	return nil
}

// addSeries decodes one TimeSeries message.
func (b *batch) addSeries(msg []byte) error {
	s := wireSeries{first: len(b.samples), full: -1}
	labelsStart, labelsEnd := -1, -1
	contiguous := true
	buf := msg
	for len(buf) > 0 {
		at := len(msg) - len(buf)
		num, typ, tagLen := protowire.ConsumeTag(buf)
		if tagLen < 0 {
			return errWire
		}
		buf = buf[tagLen:]
		if num < 1 || num > 4 {
			n := protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return errWire
			}
			buf = buf[n:]
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("%w: field %d of a TimeSeries has wire type %d", errWire, num, typ)
		}
		field, n := protowire.ConsumeBytes(buf)
		if n < 0 {
			return errWire
		}
		buf = buf[n:]
		if err := b.message(); err != nil {
			return err
		}
		switch num {
		case 1:
			if err := checkLabel(field); err != nil {
				return err
			}
			switch {
			case tagLen != 1:
				// An overlong tag: valid, but not what nextLabel
				// reads.
				contiguous = false
			case labelsStart < 0:
				labelsStart = at
			case labelsEnd != at:
				contiguous = false
			}
			labelsEnd = len(msg) - len(buf)
		case 2:
			smp, err := decodeSample(field)
			if err != nil {
				return err
			}
			b.samples = append(b.samples, smp)
		default: // exemplars or histograms
			s.full = 0
		}
	}
	if s.full >= 0 || !contiguous {
		// Rare: decoded the general way, and never cached.
		b.samples = b.samples[:s.first]
		if err := b.general(msg, 1); err != nil {
			return err
		}
		var ts prompb.TimeSeries
		if err := ts.Unmarshal(msg); err != nil {
			return err
		}
		s.full = len(b.full)
		b.full = append(b.full, ts)
		b.series = append(b.series, s)
		return nil
	}
	if labelsStart >= 0 {
		s.labels = msg[labelsStart:labelsEnd]
	}
	s.end = len(b.samples)
	b.series = append(b.series, s)
	return nil
}

// decodeSample decodes a Sample message: value (double, 1), timestamp
// (int64, 2).
func decodeSample(buf []byte) (prompb.Sample, error) {
	var s prompb.Sample
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return s, errWire
		}
		buf = buf[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(buf)
			if n < 0 {
				return s, errWire
			}
			s.Value = math.Float64frombits(v)
			buf = buf[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(buf)
			if n < 0 {
				return s, errWire
			}
			s.Timestamp = int64(v)
			buf = buf[n:]
		case num == 1 || num == 2:
			return s, fmt.Errorf("%w: field %d of a Sample has wire type %d", errWire, num, typ)
		default:
			n = protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return s, errWire
			}
			buf = buf[n:]
		}
	}
	return s, nil
}

// checkLabel validates the wire format of a Label message.
func checkLabel(buf []byte) error {
	_, _, err := parseLabel(buf)
	return err
}

// parseLabel returns the name and value of a Label message; as in prompb,
// unknown fields are skipped and a repeated field's last value counts.
func parseLabel(buf []byte) (name, value []byte, err error) {
	// What every sender writes: the name, then the value, each shorter
	// than 128 bytes, decoded without the general loop.
	if len(buf) >= 4 && buf[0] == 0x0a && buf[1] < 0x80 {
		n := 2 + int(buf[1])
		if len(buf) >= n+2 && buf[n] == 0x12 && buf[n+1] < 0x80 && len(buf) == n+2+int(buf[n+1]) {
			return buf[2:n], buf[n+2:], nil
		}
	}
	for len(buf) > 0 {
		num, typ, n := protowire.ConsumeTag(buf)
		if n < 0 {
			return nil, nil, errWire
		}
		buf = buf[n:]
		if num != 1 && num != 2 {
			n = protowire.ConsumeFieldValue(num, typ, buf)
			if n < 0 {
				return nil, nil, errWire
			}
			buf = buf[n:]
			continue
		}
		if typ != protowire.BytesType {
			return nil, nil, fmt.Errorf("%w: field %d of a Label has wire type %d", errWire, num, typ)
		}
		v, n := protowire.ConsumeBytes(buf)
		if n < 0 {
			return nil, nil, errWire
		}
		buf = buf[n:]
		if num == 1 {
			name = v
		} else {
			value = v
		}
	}
	return name, value, nil
}

// labelPair returns the name and value of a Label message whose wire
// format was checked.
func labelPair(buf []byte) (name, value []byte) {
	name, value, _ = parseLabel(buf)
	return name, value
}

// nextLabel splits the first Label off a series' checked label fields.
func nextLabel(fields []byte) (name, value, rest []byte) {
	// Each field is a one-byte tag (field 1, bytes) and a Label.
	if len(fields) >= 2 && fields[1] < 0x80 {
		n := 2 + int(fields[1])
		name, value = labelPair(fields[2:n])
		return name, value, fields[n:]
	}
	msg, n := protowire.ConsumeBytes(fields[1:])
	name, value = labelPair(msg)
	return name, value, fields[1+n:]
}

// rangeLabels calls f with each Label of a series' checked label fields,
// as sent.
func rangeLabels(fields []byte, f func(name, value []byte)) {
	for len(fields) > 0 {
		var name, value []byte
		name, value, fields = nextLabel(fields)
		f(name, value)
	}
}

// toLabels builds the series' labels as prompb.TimeSeries.ToLabels does
// (sorted by name), and reports whether they were sent sorted with no
// repeated name, which is what a series must be to be cached.
func toLabels(sb *labels.ScratchBuilder, fields []byte) (ls labels.Labels, sorted bool) {
	sb.Reset()
	sorted = true
	var prev []byte
	first := true
	rangeLabels(fields, func(name, value []byte) {
		if !first && string(name) <= string(prev) {
			sorted = false
		}
		prev, first = name, false
		sb.Add(labelString(name), labelString(value))
	})
	if !sorted {
		sb.Sort()
	}
	return sb.Labels(), sorted
}

// sameLabels reports whether a series' label fields, sent sorted, hold
// exactly the labels ls.
func sameLabels(fields []byte, ls labels.Labels) bool {
	same := true
	ls.Range(func(l labels.Label) {
		if !same || len(fields) == 0 {
			same = false
			return
		}
		var name, value []byte
		name, value, fields = nextLabel(fields)
		same = string(name) == l.Name && string(value) == l.Value
	})
	return same && len(fields) == 0
}
