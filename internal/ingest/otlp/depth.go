package otlp

import (
	"fmt"

	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
)

// maxNesting bounds how deeply a request may nest messages (protobuf) or
// objects and arrays (JSON). Real OTLP stays within a few dozen levels even
// with structured log bodies (each level of a nested attribute value costs
// two or three). pdata's protobuf decoder recurses without a limit, and a
// body of a few MiB nested a few million levels deep overflows the
// goroutine stack, which is fatal to the whole process rather than a
// recoverable panic; anything downstream that walks values recursively has
// the same weakness. So such bodies are refused before decoding.
const maxNesting = 512

var errTooDeep = fmt.Errorf("request nests deeper than %d levels", maxNesting)

// checkNesting returns errTooDeep when body nests deeper than maxNesting,
// and otherwise the body's shape, from which its decoded size is
// estimated; packed names the request type's packed varint fields. It
// says nothing about whether body is otherwise valid.
func checkNesting(body []byte, enc wireEncoding, packed decodecost.PackedVarints) (decodecost.Shape, error) {
	var s decodecost.Shape
	if enc == encJSON {
		s = decodecost.JSON(body, maxNesting)
	} else {
		s = decodecost.ProtoPacked(body, maxNesting, packed)
	}
	if s.Depth > maxNesting {
		return s, errTooDeep
	}
	return s, nil
}
