// Package logql parses the subset of LogQL that Grafana's Loki data source
// and everyday log queries need, into a syntax tree with positions, so
// that vigil can answer the Loki query API over its own log store.
//
// The subset:
//
//   - stream selectors {a="b", c!="d", e=~"f.*", g!~"h"}, at least one of
//     whose matchers must not match the empty value (Loki's rule; without
//     it a query would read every stream);
//   - line filters |= != |~ !~, chained;
//   - parsers | json (with optional label="path" extractions) and
//     | logfmt;
//   - label filters: label="s", !=, =~, !~ on strings; ==, =, !=, >, >=,
//     <, <= on numbers and Go durations (| status >= 400,
//     | duration > 1.5s), joined by and, or, ',' or juxtaposition, with
//     parentheses;
//   - | line_format "template" (the template is kept as a string), and
//     | drop / | keep of labels, bare or with a matcher;
//   - range aggregations count_over_time, rate, bytes_over_time and
//     bytes_rate over [range], with an optional offset;
//   - vector aggregations sum, avg, min, max, count, stddev, stdvar,
//     topk and bottomk, with by (...) or without (...) before or after;
//   - binary operators + - * / % ^, comparisons (with bool), and, or and
//     unless between metric queries and numbers, with PromQL precedence;
//     vector(n); numbers.
//
// That covers the queries Grafana's Loki data source sends: the health
// check vector(1)+vector(1), the log volume
// sum by (level, detected_level) (count_over_time({...} | drop __error__[1m])),
// the empty line filter (|= and a pair of backticks) its query builder
// leaves, and the selectors of the label browser.
//
// Left out, with an error that names them: the regexp, pattern, unpack,
// label_format, unwrap, decolorize and distinct stages, and with them the
// unwrapped range aggregations (sum_over_time, quantile_over_time...);
// label_replace, sort and friends; on/ignoring/group_left vector matching;
// byte-size literals (10KB) and ip() in label filters; line filter
// "or" chains. Regexps are RE2 (Go's regexp), compiled at parse time:
// label matchers anchored at both ends, line filters not.
//
// Engine evaluates the subset over a Source (engine.go): log queries to
// streams whose labels are the stream labels, structured metadata and
// parsed labels, metric queries to promql matrices, vectors and scalars.
// It follows Loki where Loki's behaviour shows: stages mark the lines they
// fail on with __error__ instead of dropping them, and a metric query over
// such lines fails unless the query drops or filters them.
//
// Every node's String prints canonical LogQL that parses back to the same
// tree; nested binary operations are parenthesized, so the tree need not
// record the parentheses of the query.
package logql
