import { memo, useEffect, useLayoutEffect, useRef, useState } from 'react'
import { apiURL, type PromInstant, type PromMatrix } from '../api'
import { ChangeList, toMarker, useChanges } from '../changes'
import { TimeChart } from '../components/Chart'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtNumber, fmtTime, niceStep } from '../format'
import { useFetch } from '../hooks'
import { absoluteRange, useTimeRange } from '../time'
import { useQuery, useSetQuery } from '../url'
import { apply, contextAt, suggest, type Context, type Suggestion } from './promqlComplete'

const MAX_SERIES = 50

export function seriesName(metric: Record<string, string>): string {
  const { __name__: name = '', ...rest } = metric
  const labels = Object.entries(rest)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
  return labels.length ? `${name}{${labels.join(', ')}}` : name || '{}'
}

function QueryInput({ value, onRun }: { value: string; onRun: (q: string) => void }) {
  const [text, setText] = useState(value)
  const [sugg, setSugg] = useState<{ ctx: Context; items: Suggestion[]; active: number } | null>(null)
  const ref = useRef<HTMLTextAreaElement>(null)
  const seq = useRef(0)
  // Where the caret goes once an accepted suggestion is rendered. Set in a
  // layout effect, before the browser handles the next key: a caret moved
  // on the next animation frame instead could land after a fast typist's
  // next keys and put the rest of their input in the wrong place.
  const caretAfter = useRef<number | null>(null)
  useEffect(() => setText(value), [value])
  useLayoutEffect(() => {
    const el = ref.current
    const caret = caretAfter.current
    if (!el || caret === null) return
    caretAfter.current = null
    el.focus()
    el.setSelectionRange(caret, caret)
  })

  const complete = (t: string, caret: number) => {
    const ctx = contextAt(t, caret)
    const n = ++seq.current
    if (ctx.kind === 'none') return setSugg(null)
    suggest(ctx).then(
      (items) => n === seq.current && setSugg(items.length ? { ctx, items, active: 0 } : null),
      () => n === seq.current && setSugg(null),
    )
  }
  const accept = (s: Suggestion) => {
    const el = ref.current
    if (!el || !sugg) return
    const [next, caret] = apply(text, el.selectionStart, sugg.ctx, s)
    caretAfter.current = caret
    setText(next)
    setSugg(null)
  }

  return (
    <div className="promql">
      <textarea
        ref={ref}
        aria-label="PromQL query"
        data-testid="promql-input"
        rows={Math.min(6, text.split('\n').length)}
        spellCheck={false}
        autoComplete="off"
        placeholder='PromQL, e.g. sum by (service_name) (rate(traces_span_metrics_calls_total[1m]))'
        value={text}
        onChange={(e) => {
          setText(e.target.value)
          complete(e.target.value, e.target.selectionStart)
        }}
        onBlur={() => setTimeout(() => setSugg(null), 150)}
        onKeyDown={(e) => {
          if (sugg) {
            if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
              e.preventDefault()
              const d = e.key === 'ArrowDown' ? 1 : -1
              setSugg({ ...sugg, active: (sugg.active + d + sugg.items.length) % sugg.items.length })
              return
            }
            if (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey)) {
              e.preventDefault()
              accept(sugg.items[sugg.active])
              return
            }
            if (e.key === 'Escape') {
              setSugg(null)
              return
            }
          }
          if (e.key === 'Enter' && !e.shiftKey) {
            e.preventDefault()
            setSugg(null)
            onRun(text.trim())
          }
          if (e.key === ' ' && e.ctrlKey) {
            e.preventDefault()
            complete(text, e.currentTarget.selectionStart)
          }
        }}
      />
      {sugg && (
        <ul className="suggestions" role="listbox" data-testid="promql-suggestions">
          {sugg.items.map((s, i) => (
            <li
              key={s.detail + s.label}
              role="option"
              aria-selected={i === sugg.active}
              className={i === sugg.active ? 'active' : ''}
              onMouseDown={(e) => {
                e.preventDefault()
                accept(s)
              }}
            >
              <span className="mono">{s.label}</span>
              <span className="muted">{s.detail}</span>
            </li>
          ))}
        </ul>
      )}
      <button type="button" className="primary" data-testid="promql-run" onClick={() => onRun(text.trim())}>
        Run query
      </button>
    </div>
  )
}

// errorText is an error's message without the status prefix getJSON adds:
// the range and the instant query of one bad query fail alike.
const errorText = (e: Error | undefined) => e?.message.replace(/^\d+: /, '')

// QueryResults runs the query over the range (chart) and at its end
// (table). A query that is wrong fails both the same way: its error is
// shown once, for the query, rather than once per view. It is memoized:
// editing the query must not redraw the chart.
const QueryResults = memo(function QueryResults({ query }: { query: string }) {
  const t = useTimeRange()
  const start = t.start / 1000
  const end = t.end / 1000
  const step = niceStep(end - start)
  const range = useFetch<PromMatrix>(apiURL('/api/v1/query_range', { query, start: start.toFixed(3), end: end.toFixed(3), step }))
  const inst = useFetch<{ data: PromInstant }>(apiURL('/api/v1/query', { query, time: end.toFixed(3) }))
  if (range.error && inst.error && errorText(range.error) === errorText(inst.error))
    return <ErrorBox error={new Error(errorText(range.error))} what="the query" />
  return (
    <>
      <RangeChart {...range} start={start} end={end} step={step} />
      <InstantTable {...inst} at={t.end} />
    </>
  )
})

function RangeChart(props: { data: PromMatrix | undefined; error: Error | undefined; loading: boolean; start: number; end: number; step: number }) {
  const { data, error, loading, start, end, step } = props
  const setQuery = useSetQuery()
  const changes = useChanges(start, end)
  if (loading && !data) return <Loading what="the graph" />
  if (error) return <ErrorBox error={error} what="the graph" />
  const result = data?.data.result ?? []
  if (!result.length) return <Empty>The query returned no series in this range — widen the time range or check the metric name.</Empty>
  const shown = result.slice(0, MAX_SERIES)
  const times = [...new Set(shown.flatMap((s) => s.values.map((v) => v[0])))].sort((a, b) => a - b)
  const idx = new Map(times.map((x, i) => [x, i]))
  const series = shown.map((s) => {
    const values: (number | null)[] = times.map(() => null)
    for (const [ts, v] of s.values) values[idx.get(ts)!] = parseFloat(v)
    return { label: seriesName(s.metric), values }
  })
  return (
    <div data-testid="metrics-chart">
      {result.length > MAX_SERIES && (
        <p className="hint">
          Showing {MAX_SERIES} of {result.length} series; aggregate (sum by …) to see them all.
        </p>
      )}
      <p className="hint">Step {step}s · drag across the chart to zoom in</p>
      <TimeChart
        times={times}
        series={series}
        xRange={[start, end]}
        yFormat={fmtNumber}
        onSelect={(min, max) => setQuery(absoluteRange(min * 1000, max * 1000))}
        markers={changes.map(toMarker)}
      />
      <ChangeList changes={changes} />
    </div>
  )
}

function InstantTable(props: { data: { data: PromInstant } | undefined; error: Error | undefined; loading: boolean; at: number }) {
  const { data, error, loading } = props
  if (loading && !data) return <Loading what="the table" />
  if (error) return <ErrorBox error={error} what="the table" />
  if (!data) return null
  const r = data.data
  let rows: { name: string; value: string }[] = []
  if (r.resultType === 'vector') rows = r.result.map((s) => ({ name: seriesName(s.metric), value: s.value[1] }))
  else if (r.resultType === 'matrix')
    rows = r.result.map((s) => ({ name: seriesName(s.metric), value: s.values.map((v) => `${v[1]} @${v[0]}`).join('\n') }))
  else rows = [{ name: r.resultType, value: r.result[1] }]
  rows.sort((a, b) => a.name.localeCompare(b.name))
  return (
    <>
      <h2>Table at {fmtTime(props.at)}</h2>
      {rows.length === 0 ? (
        <Empty>No series at the end of the range.</Empty>
      ) : (
        <table className="grid" data-testid="metrics-table">
          <thead>
            <tr>
              <th>Series</th>
              <th className="num">Value</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row, i) => (
              <tr key={i}>
                <td className="mono">
                  {row.name}
                </td>
                <td className="num mono pre">{row.value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  )
}

export default function MetricsExplorer() {
  const q = useQuery()
  const setQuery = useSetQuery()
  const query = q.get('query') ?? ''
  return (
    <section>
      <h1>Metrics explorer</h1>
      <QueryInput value={query} onRun={(next) => setQuery({ query: next })} />
      <p className="hint">Enter runs the query, Shift+Enter adds a line, Tab or Enter picks a completion, Ctrl+Space asks for one.</p>
      {query ? (
        <QueryResults query={query} />
      ) : (
        <Empty>
          Type a PromQL query. Spans are recorded as traces_span_metrics_calls_total and traces_span_metrics_duration_seconds,
          logs as vigil_log_records_total; scraped targets report up.
        </Empty>
      )}
    </section>
  )
}
