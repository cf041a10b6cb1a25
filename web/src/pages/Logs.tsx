import { memo, useEffect, useState } from 'react'
import { Link } from 'wouter'
import { apiURL, getJSON, type LogHistogram, type LogRecord, type LogsPage } from '../api'
import { StackedBars } from '../components/Chart'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtTime, valueText } from '../format'
import { useFetch } from '../hooks'
import { absoluteRange, timeParams, useTimeRange } from '../time'
import { band, SEVERITIES, SEVERITY_COLORS } from '../severity'
import { parseTags } from '../tags'
import { href, useQuery, useSetQuery } from '../url'

// LogLine is one log record; a click shows its attributes. In the log
// explorer its trace id links to the trace; inside a trace view (onSpan set)
// its span id selects the span, when that span is stored (inTrace).
// onFilter, when set, offers to filter by each attribute.
export function LogLine(props: {
  log: LogRecord
  highlight?: boolean
  onSpan?: () => void
  inTrace?: boolean
  onFilter?: (key: string, value: string) => void
}) {
  const { log, highlight, onSpan, inTrace, onFilter } = props
  const [open, setOpen] = useState(false)
  const t = useTimeRange()
  const attrs = Object.entries(log.attributes ?? {})
  const res = Object.entries(log.resource ?? {})
  const b = band(log.severity)
  return (
    <div className={`logline sev-${b.toLowerCase()} ${highlight ? 'highlight' : ''}`} data-testid="log-line">
      <div className="logline-main" onClick={() => setOpen(!open)}>
        <span className="ts">{fmtTime(new Date(log.timestamp))}</span>
        <span className={`sev sev-${b.toLowerCase()}`}>{log.severity || '—'}</span>
        <span className="svc">{log.service}</span>
        <span className="body">{valueText(log.body)}</span>
        {log.trace_id &&
          (onSpan && !inTrace ? (
            <span className="muted" title="This span has not been stored">
              span {log.span_id.slice(0, 8) || '—'}
            </span>
          ) : onSpan ? (
            <button
              type="button"
              className="linkish"
              onClick={(e) => {
                e.stopPropagation()
                onSpan()
              }}
            >
              span {log.span_id.slice(0, 8)}
            </button>
          ) : (
            <Link
              href={href(`/traces/${log.trace_id}`, { ...timeParams(t), span: log.span_id || undefined })}
              className="tracelink"
              data-testid="log-trace-link"
              onClick={(e) => e.stopPropagation()}
            >
              trace {log.trace_id.slice(0, 8)}
            </Link>
          ))}
      </div>
      {open && (
        <div className="logline-details">
          <table className="kv">
            <tbody>
              {log.trace_id && (
                <tr>
                  <th>trace_id</th>
                  <td className="mono">{log.trace_id}</td>
                </tr>
              )}
              {log.span_id && (
                <tr>
                  <th>span_id</th>
                  <td className="mono">{log.span_id}</td>
                </tr>
              )}
              {[...attrs.map(([k, v]) => ['', k, v] as const), ...res.map(([k, v]) => ['resource ', k, v] as const)].map(([what, k, v]) => (
                <tr key={what + k}>
                  <th>
                    {what}
                    {k}
                  </th>
                  <td>
                    <span>{valueText(v)}</span>
                    {onFilter && /^[^=\s"]+$/.test(k) && (
                      <button type="button" className="linkish filter" title={`Only logs with ${k} = this value`} onClick={() => onFilter(k, valueText(v))}>
                        filter
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  )
}

// LogResults shows the first page of url and appends later pages on demand.
// It is keyed by url, so changing a filter starts over.
function LogResults({ url, onFilter }: { url: string; onFilter: (key: string, value: string) => void }) {
  const first = useFetch<LogsPage>(url)
  const [more, setMore] = useState<{ lines: LogRecord[]; cursor?: string; loading: boolean; error?: Error }>({ lines: [], loading: false })
  useEffect(() => setMore({ lines: [], loading: false }), [first.data])
  if (first.loading) return <Loading what="logs" />
  if (first.error) return <ErrorBox error={first.error} what="logs" />
  if (!first.data) return null
  const lines = [...first.data.data, ...more.lines]
  const cursor = more.lines.length ? more.cursor : first.data.next_cursor
  if (!lines.length)
    return <Empty>No logs match in this range — widen the time range, loosen the filters, or send logs to :4317 (OTLP).</Empty>
  return (
    <>
      <div className="loglist" data-testid="log-results">
        {lines.map((l, i) => (
          <LogLine key={i} log={l} onFilter={onFilter} />
        ))}
      </div>
      <div className="more">
        <span className="muted">{lines.length} lines, newest first</span>
        {more.error && <ErrorBox error={more.error} what="more logs" />}
        {cursor && (
          <button
            type="button"
            disabled={more.loading}
            onClick={() => {
              setMore({ ...more, loading: true })
              getJSON<LogsPage>(`${url}&cursor=${encodeURIComponent(cursor)}`).then(
                (p) => setMore({ lines: [...more.lines, ...p.data], cursor: p.next_cursor, loading: false }),
                (e: Error) => setMore({ ...more, loading: false, error: e }),
              )
            }}
          >
            {more.loading ? 'Loading…' : 'Load more'}
          </button>
        )}
      </div>
    </>
  )
}

// Histogram is memoized: typing in the filters must not redraw the chart.
const Histogram = memo(function Histogram({ url }: { url: string }) {
  const t = useTimeRange()
  const setQuery = useSetQuery()
  const { data, error, loading } = useFetch<LogHistogram>(url)
  if (loading && !data) return <div className="histogram placeholder">Loading histogram…</div>
  if (error) return <ErrorBox error={error} what="the histogram" />
  if (!data) return null
  const h = data.data
  const step = h.step || 60
  // Every bin of the range, including empty ones the server left out.
  const first = Math.floor(t.start / 1000 / step) * step
  const times: number[] = []
  for (let x = first; x < t.end / 1000; x += step) times.push(x)
  const index = new Map(times.map((x, i) => [x, i]))
  const bands = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL', 'OTHER']
  const counts: Record<string, number[]> = Object.fromEntries(bands.map((b) => [b, times.map(() => 0)]))
  for (const bk of h.buckets ?? []) {
    let i = index.get(bk.time)
    if (i === undefined) {
      i = times.length
      times.push(bk.time)
      bands.forEach((b) => counts[b].push(0))
      index.set(bk.time, i)
    }
    for (const [sev, n] of Object.entries(bk.counts)) counts[band(sev)][i] += n
  }
  // Late-arriving bins outside the computed grid are placed in time order.
  const order = times.map((_, i) => i).sort((a, b) => times[a] - times[b])
  const stacks = bands
    .filter((b) => counts[b].some((n) => n > 0))
    .map((b) => ({ label: b, color: SEVERITY_COLORS[b], values: order.map((i) => counts[b][i]) }))
  return (
    <div className="histogram" data-testid="log-histogram">
      <div className="hint">
        {h.total} log records · {step}s bins · drag across the chart to zoom in
      </div>
      <StackedBars
        times={order.map((i) => times[i])}
        stacks={stacks.length ? stacks : [{ label: 'logs', color: SEVERITY_COLORS.INFO, values: order.map(() => 0) }]}
        onSelect={(min, max) => setQuery(absoluteRange(min * 1000, max * 1000))}
      />
    </div>
  )
})

export default function Logs() {
  const t = useTimeRange()
  const q = useQuery()
  const setQuery = useSetQuery()
  const text = q.get('q') ?? ''
  const service = q.get('service') ?? ''
  const severity = q.getAll('severity')
  const attrs = q.get('attrs') ?? ''
  const [draft, setDraft] = useState({ text, service, attrs })
  useEffect(() => setDraft({ text, service, attrs }), [text, service, attrs])
  const services = useFetch<{ data: string[] | null }>('/api/services')

  const parsedAttrs = parseTags(attrs)
  const draftAttrs = parseTags(draft.attrs)
  const filters: Record<string, string | string[] | undefined> = { q: text, service, severity }
  if (typeof parsedAttrs !== 'string') for (const [k, v] of Object.entries(parsedAttrs)) filters[`attr.${k}`] = v
  const range = { start: Math.floor(t.start), end: Math.ceil(t.end) }
  const listURL = apiURL('/api/logs', { ...filters, ...range, limit: 100 })
  const histURL = apiURL('/api/logs/histogram', { ...filters, ...range })

  return (
    <section>
      <h1>Logs</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault()
          if (typeof draftAttrs !== 'string') setQuery({ q: draft.text, service: draft.service, attrs: draft.attrs })
        }}
      >
        <label className="wide">
          Search
          <input
            name="q"
            type="search"
            placeholder='words that must all occur, "or a phrase"'
            value={draft.text}
            onChange={(e) => setDraft({ ...draft, text: e.target.value })}
          />
        </label>
        <label>
          Service
          <select name="service" value={draft.service} onChange={(e) => setDraft({ ...draft, service: e.target.value })}>
            <option value="">All services</option>
            {(services.data?.data ?? []).map((s) => (
              <option key={s}>{s}</option>
            ))}
            {draft.service && !(services.data?.data ?? []).includes(draft.service) && <option>{draft.service}</option>}
          </select>
        </label>
        <label className="wide">
          Attributes
          <input name="attrs" placeholder="http.route=/checkout tenant=acme" value={draft.attrs} onChange={(e) => setDraft({ ...draft, attrs: e.target.value })} />
        </label>
        <button type="submit" className="primary" disabled={typeof draftAttrs === 'string'}>
          Search
        </button>
        <fieldset className="severities">
          <legend>Severity</legend>
          {SEVERITIES.map((s) => (
            <label key={s} className="check">
              <input
                type="checkbox"
                checked={severity.includes(s)}
                onChange={(e) => setQuery({ severity: e.target.checked ? [...severity, s] : severity.filter((x) => x !== s) })}
              />
              {s}
            </label>
          ))}
        </fieldset>
        {typeof draftAttrs === 'string' && <div className="form-error">{draftAttrs}</div>}
      </form>
      {typeof parsedAttrs === 'string' ? (
        <div className="state error">{parsedAttrs}</div>
      ) : (
        <>
          <Histogram url={histURL} />
          <LogResults
            key={listURL}
            url={listURL}
            onFilter={(k, v) => {
              const term = /^[^\s"\\]*$/.test(v) ? `${k}=${v}` : `${k}="${v.replace(/["\\]/g, '\\$&')}"`
              setQuery({ attrs: attrs ? `${attrs} ${term}` : term })
            }}
          />
        </>
      )}
    </section>
  )
}
