import { useMemo, useState } from 'react'
import { Link } from 'wouter'
import { apiURL, type JaegerSpan, type JaegerTrace, type KeyValue, type LogsPage } from '../api'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtDurationMs, fmtTime, promString, valueText } from '../format'
import { useFetch } from '../hooks'
import { absoluteRange, timeParams, useTimeRange } from '../time'
import { href, useQuery, useSetQuery } from '../url'
import { LogLine } from './Logs'

interface Row {
  span: JaegerSpan
  service: string
  depth: number
  children: number
  error: boolean
}

const isError = (s: JaegerSpan) => (s.tags ?? []).some((t) => t.key === 'error' && t.value === true)
const tag = (s: JaegerSpan, key: string) => (s.tags ?? []).find((t) => t.key === key)?.value

// profileHref links the Profiles page filtered to the samples of a span
// that otel-profiling-go marked with pyroscope.profile.id (the id its
// samples are labelled with), a minute either side of the span, since a
// profile covers the 10 to 15 s around the samples; null when the span is
// not profiled.
function profileHref(s: JaegerSpan, service: string): string | null {
  const id = tag(s, 'pyroscope.profile.id')
  if (id === undefined || id === '') return null
  const startMs = s.startTime / 1000
  return href('/profiles', { service, type: 'cpu', span_id: String(id), ...absoluteRange(startMs - 60e3, startMs + s.duration / 1000 + 60e3) })
}

// flatten orders spans depth-first under their parents (by start time);
// spans whose parent is missing start their own subtree.
function flatten(trace: JaegerTrace): Row[] {
  const byID = new Map(trace.spans.map((s) => [s.spanID, s]))
  const kids = new Map<string, JaegerSpan[]>()
  const roots: JaegerSpan[] = []
  for (const s of trace.spans) {
    const parent = (s.references ?? []).find((r) => r.refType === 'CHILD_OF' && r.traceID === s.traceID && byID.has(r.spanID))
    if (parent && parent.spanID !== s.spanID) {
      const list = kids.get(parent.spanID) ?? []
      list.push(s)
      kids.set(parent.spanID, list)
    } else roots.push(s)
  }
  const byStart = (a: JaegerSpan, b: JaegerSpan) => a.startTime - b.startTime
  const rows: Row[] = []
  const seen = new Set<string>()
  const walk = (s: JaegerSpan, depth: number) => {
    if (seen.has(s.spanID)) return // a reference cycle in bad data
    seen.add(s.spanID)
    const children = (kids.get(s.spanID) ?? []).sort(byStart)
    rows.push({ span: s, service: trace.processes[s.processID]?.serviceName ?? '?', depth, children: children.length, error: isError(s) })
    children.forEach((c) => walk(c, depth + 1))
  }
  roots.sort(byStart).forEach((r) => walk(r, 0))
  return rows
}

function KVTable({ items, testId }: { items: KeyValue[]; testId?: string }) {
  if (!items.length) return <p className="muted">none</p>
  return (
    <table className="kv" data-testid={testId}>
      <tbody>
        {items.map((kv, i) => (
          <tr key={kv.key + i}>
            <th>{kv.key}</th>
            <td>{valueText(kv.value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  )
}

// durLabel places a span's duration after its bar, before it when the bar
// ends near the right edge, or inside it when the bar fills the track.
function durLabel(left: number, width: number) {
  if (left + width < 80) return { left: `${left + width + 0.5}%` }
  if (left > 20) return { right: `${100 - left + 0.5}%` }
  return { right: `${Math.max(100 - left - width, 0) + 0.5}%` }
}

const STATUS_KEYS = new Set(['error', 'otel.status_code', 'otel.status_description', 'span.kind'])

function SpanDetails({ row, trace, traceStart, logCount }: { row: Row; trace: JaegerTrace; traceStart: number; logCount: number }) {
  const t = useTimeRange()
  const s = row.span
  const proc = trace.processes[s.processID]
  const parent = (s.references ?? []).find((r) => r.refType === 'CHILD_OF')
  const links = (s.references ?? []).filter((r) => r.refType === 'FOLLOWS_FROM')
  const status = (tag(s, 'otel.status_code') as string | undefined) ?? 'UNSET'
  const desc = tag(s, 'otel.status_description') as string | undefined
  // The service's request rate by status, 15 minutes either side of the span.
  const mid = s.startTime / 1000
  const promql = `sum by (status_code) (rate(traces_span_metrics_calls_total{service_name=${promString(row.service)}}[1m]))`
  const metricsHref = href('/explore', { query: promql, ...absoluteRange(mid - 15 * 60e3, mid + 15 * 60e3) })
  return (
    <aside className="span-details" data-testid="span-details">
      <h2>
        {row.service}: {s.operationName}
      </h2>
      <dl className="facts">
        <dt>Span</dt>
        <dd className="mono">{s.spanID}</dd>
        <dt>Parent</dt>
        <dd className="mono">{parent ? parent.spanID : 'none (root)'}</dd>
        <dt>Kind</dt>
        <dd>{valueText(tag(s, 'span.kind') ?? 'internal')}</dd>
        <dt>Start</dt>
        <dd>
          {fmtTime(s.startTime / 1000)} (+{fmtDurationMs((s.startTime - traceStart) / 1000)})
        </dd>
        <dt>Duration</dt>
        <dd>{fmtDurationMs(s.duration / 1000)}</dd>
        <dt>Status</dt>
        <dd className={status === 'ERROR' ? 'err' : ''} data-testid="span-status">
          {status}
          {desc ? `: ${desc}` : ''}
        </dd>
      </dl>
      <div className="actions">
        <Link href={metricsHref}>{row.service} metrics at this moment</Link>
        <Link href={href('/logs', { ...timeParams(t), service: row.service })}>{row.service} logs</Link>
        {profileHref(s, row.service) && (
          <Link href={profileHref(s, row.service) ?? ''} data-testid="span-profile">
            CPU profile of this span
          </Link>
        )}
        {logCount > 0 && <a href="#trace-logs">{logCount} log line{logCount === 1 ? '' : 's'} of this span</a>}
      </div>
      <h3>Attributes</h3>
      <KVTable testId="span-attributes" items={(s.tags ?? []).filter((kv) => !STATUS_KEYS.has(kv.key))} />
      <h3>Resource</h3>
      <KVTable testId="span-resource" items={[{ key: 'service.name', type: 'string', value: proc?.serviceName }, ...(proc?.tags ?? [])]} />
      <h3>Events</h3>
      {(s.logs ?? []).length === 0 ? (
        <p className="muted">none</p>
      ) : (
        (s.logs ?? []).map((ev, i) => (
          <div key={i} className="event">
            <div className="muted">+{fmtDurationMs((ev.timestamp - s.startTime) / 1000)} into the span</div>
            <KVTable items={ev.fields} />
          </div>
        ))
      )}
      <h3>Links</h3>
      {links.length === 0 ? (
        <p className="muted">none</p>
      ) : (
        <ul>
          {links.map((l) => (
            <li key={l.traceID + l.spanID}>
              <Link href={href(`/traces/${l.traceID}`, { span: l.spanID })} className="mono">
                {l.traceID}/{l.spanID}
              </Link>
            </li>
          ))}
        </ul>
      )}
      {(s.warnings ?? []).length > 0 && (
        <>
          <h3>Warnings</h3>
          <ul>
            {(s.warnings ?? []).map((w, i) => (
              <li key={i}>{w}</li>
            ))}
          </ul>
        </>
      )}
    </aside>
  )
}

export default function TraceView({ id }: { id: string }) {
  const q = useQuery()
  const setQuery = useSetQuery()
  const t = useTimeRange()
  const selected = q.get('span')
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set())
  const { data, error, loading } = useFetch<{ data: JaegerTrace[] }>(`/api/traces/${encodeURIComponent(id)}`)
  const trace = data?.data?.[0]
  const rows = useMemo(() => (trace ? flatten(trace) : []), [trace])

  const startUs = rows.length ? Math.min(...rows.map((r) => r.span.startTime)) : 0
  const endUs = rows.length ? Math.max(...rows.map((r) => r.span.startTime + r.span.duration)) : 0
  const total = Math.max(endUs - startUs, 1)

  // The trace's logs: from an hour before its first span to an hour after.
  const logsURL = trace
    ? apiURL('/api/logs', { trace_id: trace.traceID, limit: 1000, start: Math.floor(startUs / 1000 - 3600e3), end: Math.ceil(endUs / 1000 + 3600e3) })
    : null
  const logs = useFetch<LogsPage>(logsURL)
  const logLines = logs.data?.data ?? []

  const visible: Row[] = []
  const hiddenUnder: number[] = [] // depth stack of collapsed ancestors
  for (const r of rows) {
    while (hiddenUnder.length && hiddenUnder[hiddenUnder.length - 1] >= r.depth) hiddenUnder.pop()
    if (hiddenUnder.length) continue
    visible.push(r)
    if (collapsed.has(r.span.spanID)) hiddenUnder.push(r.depth)
  }
  const selRow = rows.find((r) => r.span.spanID === selected)
  const services = [...new Set(rows.map((r) => r.service))]
  const errors = rows.filter((r) => r.error).length
  const root = rows[0]

  if (loading) return <Loading what="trace" />
  if (error)
    return (
      <section>
        <h1>Trace {id}</h1>
        {error.message.startsWith('404') ? (
          <Empty>
            Trace {id} is not stored (yet): spans arrive within seconds of being sent, and traces older than the retention are dropped.{' '}
            <Link href={href('/traces', timeParams(t))}>Search traces</Link>.
          </Empty>
        ) : (
          <ErrorBox error={error} what="the trace" />
        )}
      </section>
    )
  if (!trace || !root) return <Empty>The trace has no spans.</Empty>

  return (
    <section className="trace-view">
      <div className="crumbs">
        <Link href={href('/traces', timeParams(t))}>Traces</Link> / <span className="mono">{trace.traceID}</span>
      </div>
      <h1 data-testid="trace-title">
        {root.service}: {root.span.operationName}
      </h1>
      <div className="facts-inline">
        <span>{fmtTime(startUs / 1000)}</span>
        <span>duration {fmtDurationMs(total / 1000)}</span>
        <span>{rows.length} spans</span>
        <span>{services.length} services</span>
        {errors > 0 && <span className="err">{errors} errors</span>}
        <span className="mono muted">{trace.traceID}</span>
      </div>
      {(trace.warnings ?? []).map((w, i) => (
        <div className="state error" key={i}>
          {w}
        </div>
      ))}
      <div className={`trace-layout ${selRow ? 'with-details' : ''}`}>
        <div className="waterfall" data-testid="waterfall" role="tree">
          <div className="wf-head">
            <div className="wf-label">Service: operation</div>
            <div className="wf-ticks">
              {[0, 0.25, 0.5, 0.75].map((f) => (
                <span key={f}>{fmtDurationMs((f * total) / 1000)}</span>
              ))}
            </div>
          </div>
          {visible.map((r) => {
            const s = r.span
            const left = ((s.startTime - startUs) / total) * 100
            const width = Math.max((s.duration / total) * 100, 0.2)
            const isSel = s.spanID === selected
            return (
              <div
                key={s.spanID}
                role="treeitem"
                aria-selected={isSel}
                data-testid="span-row"
                data-span-id={s.spanID}
                className={`wf-row ${isSel ? 'selected' : ''} ${r.error ? 'error' : ''}`}
                onClick={() => setQuery({ span: isSel ? null : s.spanID }, { replace: true })}
              >
                <div className="wf-label" style={{ paddingLeft: `${r.depth * 14 + 4}px` }}>
                  {r.children > 0 ? (
                    <button
                      type="button"
                      className="twisty"
                      aria-label={collapsed.has(s.spanID) ? 'Expand' : 'Collapse'}
                      onClick={(e) => {
                        e.stopPropagation()
                        const next = new Set(collapsed)
                        if (next.has(s.spanID)) next.delete(s.spanID)
                        else next.add(s.spanID)
                        setCollapsed(next)
                      }}
                    >
                      {collapsed.has(s.spanID) ? '▸' : '▾'}
                    </button>
                  ) : (
                    <span className="twisty" />
                  )}
                  <span className="svc">{r.service}</span> <span className="op">{s.operationName}</span>
                  {profileHref(s, r.service) && (
                    <Link href={profileHref(s, r.service) ?? ''} className="wf-profile" data-testid="span-profile-link" onClick={(e) => e.stopPropagation()}>
                      profile
                    </Link>
                  )}
                </div>
                <div className="wf-track">
                  <div className="wf-bar" style={{ left: `${left}%`, width: `${width}%` }} />
                  <span className={`wf-dur ${left + width >= 80 && left <= 20 ? 'inside' : ''}`} style={durLabel(left, width)}>
                    {fmtDurationMs(s.duration / 1000)}
                  </span>
                </div>
              </div>
            )
          })}
        </div>
        {selRow && (
          <SpanDetails row={selRow} trace={trace} traceStart={startUs} logCount={logLines.filter((l) => l.span_id === selRow.span.spanID).length} />
        )}
      </div>

      <h2 id="trace-logs">Logs of this trace</h2>
      {logs.loading && <Loading what="logs" />}
      {logs.error && <ErrorBox error={logs.error} what="the trace's logs" />}
      {logs.data && logLines.length === 0 && <Empty>No logs carry this trace id. Logs written with the request context (slog's *Context methods with vigil's SDK) are linked automatically.</Empty>}
      {logLines.length > 0 && (
        <div className="loglist" data-testid="trace-logs">
          {logLines
            .slice()
            .reverse()
            .map((l, i) => (
              <LogLine
                key={i}
                log={l}
                highlight={!!selected && l.span_id === selected}
                inTrace={rows.some((r) => r.span.spanID === l.span_id)}
                onSpan={() => setQuery({ span: l.span_id }, { replace: true })}
              />
            ))}
        </div>
      )}
    </section>
  )
}
