// Package elasticsearch accepts logs the way agents write them to
// Elasticsearch: the `_bulk` API's NDJSON (index and create actions), and
// the handful of calls agents make around it (the version and licence
// checks, cluster health, index templates, lifecycle policies and data
// streams), so that rsyslog's omelasticsearch, syslog-ng's
// elasticsearch-http(), Filebeat, Fluent Bit, Vector or an Elasticsearch
// client library can ship to vigil unchanged.
//
// Documents are mapped onto vigil's log model by their Elastic Common
// Schema fields (see ToLogs); the rest of each document is kept as
// attributes. vigil is not a search engine: updates, deletes, searches
// and index management beyond the no-ops agents need are refused with
// the error Elasticsearch itself would give for an unsupported call.
package elasticsearch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/vigil-observability/vigil/internal/ingest/limits"
)

// Bulk operations.
const (
	OpIndex  = "index"
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// ErrMalformedBulk is a bulk body whose action lines cannot be read:
// Elasticsearch refuses the whole request then, since it cannot tell
// which line is a document.
var ErrMalformedBulk = errors.New("malformed bulk request")

// Item is one operation of a bulk request.
type Item struct {
	// Op is the action: OpIndex, OpCreate, OpUpdate or OpDelete.
	Op    string
	Index string
	ID    string
	// Source is the document line, nil for a delete.
	Source json.RawMessage
	// Err, when set, is why the item is refused; it is answered in the
	// item's slot of the response and the other items are unaffected.
	Err *ItemError
}

// ItemError is an item's failure as Elasticsearch reports it.
type ItemError struct {
	Status int    // HTTP status of the item
	Type   string // Elasticsearch's exception type, e.g. mapper_parsing_exception
	Reason string
	// Rejection is the reason label counted in vigil_rejected_total.
	Rejection string
}

func (e *ItemError) Error() string { return e.Type + ": " + e.Reason }

// ParseOptions bounds a bulk request.
type ParseOptions struct {
	// DefaultIndex is the index of actions that name none (the index in a
	// /{index}/_bulk path).
	DefaultIndex string
	// MaxDocumentBytes refuses longer document lines (per item).
	MaxDocumentBytes int
}

// ParseBulk splits an NDJSON bulk body into its items. Only unreadable
// action lines fail the whole request (ErrMalformedBulk, with the line
// number); a bad document fails its own item.
func ParseBulk(body []byte, opts ParseOptions) ([]Item, error) {
	var items []Item
	line := 0
	next := func() ([]byte, bool) {
		for len(body) > 0 {
			i := bytes.IndexByte(body, '\n')
			var l []byte
			if i < 0 {
				l, body = body, nil
			} else {
				l, body = body[:i], body[i+1:]
			}
			line++
			l = bytes.TrimSpace(l)
			if len(l) > 0 {
				return l, true
			}
		}
		return nil, false
	}
	for {
		action, ok := next()
		if !ok {
			break
		}
		actionLine := line
		it, err := parseAction(action, opts.DefaultIndex)
		if err != nil {
			return nil, fmt.Errorf("%w: action line %d: %w", ErrMalformedBulk, actionLine, err)
		}
		if it.Op != OpDelete {
			src, ok := next()
			if !ok {
				return nil, fmt.Errorf("%w: action line %d: %s without a document line after it", ErrMalformedBulk, actionLine, it.Op)
			}
			it.Source = src
		}
		switch {
		case it.Op == OpUpdate || it.Op == OpDelete:
			it.Err = &ItemError{Status: 400, Type: "action_request_validation_exception",
				Reason: "vigil keeps logs: only index and create actions are accepted, not " + it.Op, Rejection: limits.ReasonUnsupported}
		case it.Index == "":
			it.Err = &ItemError{Status: 400, Type: "action_request_validation_exception",
				Reason: "index is missing: name it in the action or the path (/{index}/_bulk)", Rejection: limits.ReasonUnsupported}
		case opts.MaxDocumentBytes > 0 && len(it.Source) > opts.MaxDocumentBytes:
			it.Err = &ItemError{Status: 400, Type: "document_too_large_exception",
				Reason: fmt.Sprintf("document of %d bytes exceeds the limit of %d", len(it.Source), opts.MaxDocumentBytes), Rejection: limits.ReasonItemTooLarge}
		}
		items = append(items, it)
	}
	return items, nil
}

// parseAction reads one action line: a JSON object with one key, the
// operation, whose value holds _index and _id.
func parseAction(line []byte, defaultIndex string) (Item, error) {
	var action map[string]struct {
		Index string `json:"_index"`
		ID    string `json:"_id"`
	}
	if err := json.Unmarshal(line, &action); err != nil {
		return Item{}, fmt.Errorf("not a JSON object: %w", err)
	}
	if len(action) != 1 {
		return Item{}, fmt.Errorf("want one action, found %d keys", len(action))
	}
	for op, meta := range action {
		switch op {
		case OpIndex, OpCreate, OpUpdate, OpDelete:
		default:
			return Item{}, fmt.Errorf("unknown action %q", op)
		}
		it := Item{Op: op, Index: meta.Index, ID: meta.ID}
		if it.Index == "" {
			it.Index = defaultIndex
		}
		return it, nil
	}
	panic("unreachable")
}
