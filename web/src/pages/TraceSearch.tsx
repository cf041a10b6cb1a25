import { useEffect, useState } from 'react'
import { Link } from 'wouter'
import { apiURL, type TraceSummary } from '../api'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtDurationMs, fmtTime } from '../format'
import { useFetch } from '../hooks'
import { timeParams, useTimeRange } from '../time'
import { parseTags } from '../tags'
import { href, useQuery, useSetQuery } from '../url'

const DURATION = /^\d+(\.\d+)?(us|µs|ms|s|m|h)$/

export default function TraceSearch() {
  const t = useTimeRange()
  const tp = timeParams(t)
  const q = useQuery()
  const setQuery = useSetQuery()
  const service = q.get('service') ?? ''
  const operation = q.get('operation') ?? ''
  const tags = q.get('tags') ?? ''
  const minDuration = q.get('minDuration') ?? ''
  const maxDuration = q.get('maxDuration') ?? ''
  const limit = q.get('limit') ?? '20'

  // The form edits a draft; Search writes it to the URL, which drives the query.
  const [draft, setDraft] = useState({ service, operation, tags, minDuration, maxDuration, limit })
  useEffect(() => {
    setDraft({ service, operation, tags, minDuration, maxDuration, limit })
  }, [service, operation, tags, minDuration, maxDuration, limit])

  const services = useFetch<{ data: string[] | null }>('/api/services')
  const operations = useFetch<{ data: string[] | null }>(
    draft.service ? `/api/services/${encodeURIComponent(draft.service)}/operations` : null,
  )

  const parsedTags = parseTags(tags)
  const formError =
    typeof parseTags(draft.tags) === 'string'
      ? (parseTags(draft.tags) as string)
      : [draft.minDuration, draft.maxDuration].find((d) => d && !DURATION.test(d))
        ? 'durations look like 250ms, 1.5s, 100us'
        : ''
  const badURL = typeof parsedTags === 'string' || [minDuration, maxDuration].some((d) => d && !DURATION.test(d))
  const url = badURL
    ? null
    : apiURL('/api/trace-summaries', {
        service,
        operation,
        tags: Object.keys(parsedTags).length ? JSON.stringify(parsedTags) : undefined,
        minDuration,
        maxDuration,
        limit,
        start: Math.floor(t.start * 1000),
        end: Math.ceil(t.end * 1000),
      })
  const results = useFetch<{ data: TraceSummary[] | null }>(url)
  const traces = results.data?.data ?? []
  const maxMs = Math.max(1, ...traces.map((x) => x.durationMs))

  return (
    <section>
      <h1>Trace search</h1>
      <form
        className="filters"
        onSubmit={(e) => {
          e.preventDefault()
          if (!formError) setQuery({ ...draft, limit: draft.limit === '20' ? null : draft.limit })
        }}
      >
        <label>
          Service
          <select
            name="service"
            value={draft.service}
            onChange={(e) => setDraft({ ...draft, service: e.target.value, operation: '' })}
          >
            <option value="">All services</option>
            {(services.data?.data ?? []).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
            {draft.service && !(services.data?.data ?? []).includes(draft.service) && (
              <option value={draft.service}>{draft.service}</option>
            )}
          </select>
        </label>
        <label>
          Operation
          <select name="operation" value={draft.operation} onChange={(e) => setDraft({ ...draft, operation: e.target.value })}>
            <option value="">All operations</option>
            {(operations.data?.data ?? []).map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
            {draft.operation && !(operations.data?.data ?? []).includes(draft.operation) && (
              <option value={draft.operation}>{draft.operation}</option>
            )}
          </select>
        </label>
        <label className="wide">
          Tags
          <input
            name="tags"
            placeholder='http.response.status_code=500 error=true'
            value={draft.tags}
            onChange={(e) => setDraft({ ...draft, tags: e.target.value })}
          />
        </label>
        <label>
          Min duration
          <input name="minDuration" placeholder="100ms" size={7} value={draft.minDuration} onChange={(e) => setDraft({ ...draft, minDuration: e.target.value })} />
        </label>
        <label>
          Max duration
          <input name="maxDuration" placeholder="2s" size={7} value={draft.maxDuration} onChange={(e) => setDraft({ ...draft, maxDuration: e.target.value })} />
        </label>
        <label>
          Limit
          <select name="limit" value={draft.limit} onChange={(e) => setDraft({ ...draft, limit: e.target.value })}>
            {['20', '50', '100', '500'].map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <button type="submit" className="primary" disabled={!!formError}>
          Search
        </button>
        {formError && <div className="form-error">{formError}</div>}
      </form>

      {services.error && <ErrorBox error={services.error} what="services" />}
      {results.loading && <Loading what="traces" />}
      {results.error && <ErrorBox error={results.error} what="traces" />}
      {results.data && traces.length === 0 && (
        <Empty>No traces in this range — widen the time range, loosen the filters, or send spans to :4317.</Empty>
      )}
      {traces.length > 0 && (
        <>
          <p className="hint">
            {traces.length} trace{traces.length === 1 ? '' : 's'}, newest first.
          </p>
          <table className="grid traces" data-testid="trace-results">
            <thead>
              <tr>
                <th>Trace</th>
                <th>Start</th>
                <th className="num">Duration</th>
                <th className="num">Spans</th>
                <th className="num">Errors</th>
                <th>Services</th>
              </tr>
            </thead>
            <tbody>
              {traces.map((x) => (
                <tr key={x.traceID} className={x.errorCount ? 'has-errors' : ''}>
                  <td className="name">
                    <Link href={href(`/traces/${x.traceID}`, tp)}>
                      {x.rootService ? `${x.rootService}: ${x.rootName}` : '(root span missing)'}
                    </Link>
                    <div className="muted mono">{x.traceID.slice(0, 16)}</div>
                  </td>
                  <td>{fmtTime(new Date(x.start))}</td>
                  <td className="num">
                    <div className="durbar">
                      <span style={{ width: `${(100 * x.durationMs) / maxMs}%` }} />
                    </div>
                    {fmtDurationMs(x.durationMs)}
                  </td>
                  <td className="num">{x.spanCount}</td>
                  <td className="num err">{x.errorCount || ''}</td>
                  <td>
                    <div className="chips">
                      {(x.services ?? []).map((s, i) => (
                        <span key={i} className={`chip ${s.errors ? 'chip-err' : ''}`}>
                          {s.name || '(no service)'} {s.spans}
                        </span>
                      ))}
                    </div>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  )
}
