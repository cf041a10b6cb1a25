// Doctor: the findings of vigil's doctor (/api/doctor), the seams where
// telemetry silently breaks, most urgent first, each with its evidence, the
// probable cause and the fix; "Run now" runs the checks again.
import { useCallback, useEffect, useState, type ReactNode } from 'react'
import { Link } from 'wouter'
import { getJSON, newerReport, publishDoctorReport, type DoctorFinding, type DoctorReport, type DoctorSeverity } from '../api'
import { fmtSpan } from '../alerting'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtNumber, fmtTime } from '../format'
import { useEvery, useFetch, useOnRefresh } from '../hooks'
import { timeParams, useTimeRange } from '../time'
import { href, useQuery, useSetQuery } from '../url'

const SEVERITIES: DoctorSeverity[] = ['critical', 'warning', 'info']
const TITLES: Record<DoctorSeverity, string> = { critical: 'Critical', warning: 'Warning', info: 'Info' }

// What a sample is decides where it links: only things that unmistakably
// are a trace id or a series get a link; metric names and label values are
// shown as they are.
const TRACE_ID = /^[0-9a-f]{32}$/i
const SERIES = /^[a-zA-Z_:][a-zA-Z0-9_:]*\{.*\}$/s
// Hops are written "upstream → downstream".
const HOP = /(\s*(?:→|->)\s*)/

// Go writes durations as 1h0m0s; people write 1h.
const fmtWindow = (w: string) => w.replace(/(\d[hm])0s\b/g, '$1').replace(/(\d+h)0m\b/g, '$1')

// The zero time the API answers before the first run.
const checked = (r: DoctorReport | undefined) => (r && !r.checked_at.startsWith('0001') ? new Date(r.checked_at) : null)

function Sample({ s }: { s: string }) {
  const t = useTimeRange()
  if (TRACE_ID.test(s) && !/^0+$/.test(s))
    return (
      <Link href={href(`/traces/${s.toLowerCase()}`, timeParams(t))} data-testid="sample" data-kind="trace">
        {s}
      </Link>
    )
  if (SERIES.test(s))
    return (
      <Link href={href('/explore', { ...timeParams(t), query: s })} data-testid="sample" data-kind="series">
        {s}
      </Link>
    )
  return (
    <span data-testid="sample" data-kind="text">
      {s}
    </span>
  )
}

// Subject links the services it names (a service, or both ends of a hop) to
// their pages; anything else (targets, rules, routes) is plain text.
function Subject({ subject, services }: { subject: string; services: Set<string> }) {
  const t = useTimeRange()
  const parts = subject.split(HOP)
  return (
    <>
      {parts.map((p, i) =>
        i % 2 === 0 && services.has(p) ? (
          <Link key={i} href={href(`/services/${encodeURIComponent(p)}`, timeParams(t))} data-testid="subject-service">
            {p}
          </Link>
        ) : (
          <span key={i}>{p}</span>
        ),
      )}
    </>
  )
}

function Fact({ label, children }: { label: string; children: ReactNode }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  )
}

function FindingCard({ f, services }: { f: DoctorFinding; services: Set<string> }) {
  const values = Object.entries(f.evidence.values ?? {}).sort(([a], [b]) => a.localeCompare(b))
  const samples = [...new Set(f.evidence.samples ?? [])]
  return (
    <article className={`finding sev-${f.severity}`} data-testid="finding" data-code={f.code} data-severity={f.severity}>
      <div className="finding-head">
        <span className={`state-badge ${f.severity}`}>{f.severity}</span>
        <code className="finding-code">{f.code}</code>
        <span className="finding-subject" data-testid="finding-subject">
          <Subject subject={f.subject} services={services} />
        </span>
        {f.evidence.window && (
          <span className="finding-window muted" data-testid="finding-window">
            {fmtWindow(f.evidence.window)}
          </span>
        )}
      </div>
      <div className="finding-summary" data-testid="finding-summary">
        {f.evidence.summary}
      </div>
      <dl className="facts finding-facts">
        <Fact label="Cause">
          <span data-testid="finding-cause">{f.cause}</span>
        </Fact>
        <Fact label="Fix">
          <span className="finding-fix" data-testid="finding-fix">
            {f.fix}
          </span>
        </Fact>
        {values.length > 0 && (
          <Fact label="Values">
            <span className="chips" data-testid="finding-values">
              {values.map(([k, v]) => (
                <span key={k} className="chip mono">
                  {k} {fmtNumber(v)}
                </span>
              ))}
            </span>
          </Fact>
        )}
        {samples.length > 0 && (
          <Fact label={samples.length === 1 ? 'Sample' : 'Samples'}>
            <span className="chips samples" data-testid="finding-samples">
              {samples.map((s) => (
                <span key={s} className="chip mono">
                  <Sample s={s} />
                </span>
              ))}
            </span>
          </Fact>
        )}
      </dl>
    </article>
  )
}

export default function Doctor() {
  const q = useQuery()
  const setQuery = useSetQuery()
  const sevFilter = q.get('severity') ?? ''
  const codeFilter = q.get('code') ?? ''
  const text = q.get('q') ?? ''

  // The report the doctor keeps from its last run, and one run on demand;
  // the newer of the two is shown.
  const last = useFetch<DoctorReport>('/api/doctor')
  const [fresh, setFresh] = useState<DoctorReport>()
  const [running, setRunning] = useState(false)
  const [runError, setRunError] = useState<Error>()
  const services = useFetch<{ data: string[] | null }>('/api/services')
  useEvery(30_000, last.reload)
  useOnRefresh(last.reload)

  const runNow = useCallback(() => {
    setRunning(true)
    setRunError(undefined)
    getJSON<DoctorReport>('/api/doctor?refresh=1').then(
      (r) => {
        setFresh(r)
        setRunning(false)
      },
      (e: Error) => {
        setRunError(e)
        setRunning(false)
      },
    )
  }, [])

  const report = newerReport(last.data, fresh)
  useEffect(() => {
    if (report) publishDoctorReport(report)
  }, [report])

  const findings = report?.findings ?? []
  const known = new Set(services.data?.data ?? [])
  const codes = [...new Set([...findings.map((f) => f.code), ...(codeFilter ? [codeFilter] : [])])].sort()
  const needle = text.toLowerCase()
  const shown = findings.filter(
    (f) =>
      (!sevFilter || f.severity === sevFilter) &&
      (!codeFilter || f.code === codeFilter) &&
      (!needle || `${f.subject}\n${f.evidence.summary}`.toLowerCase().includes(needle)),
  )
  const at = checked(report)
  const errors = report?.errors ?? []

  return (
    <section>
      <h1>Doctor</h1>
      <p className="hint">
        Seams where telemetry silently breaks although each component looks healthy: targets nobody scrapes, rules that can never fire,
        alerts that reach nobody, traces that lose their context. vigil runs these checks continuously; <em>Run now</em> runs them again.
        What each code means: <code>docs/doctor.md</code>.
      </p>
      <form className="filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Severity
          <select aria-label="Severity" value={sevFilter} onChange={(e) => setQuery({ severity: e.target.value }, { replace: true })}>
            <option value="">all</option>
            {SEVERITIES.map((s) => (
              <option key={s} value={s}>
                {s} ({findings.filter((f) => f.severity === s).length})
              </option>
            ))}
          </select>
        </label>
        <label>
          Code
          <select aria-label="Code" value={codeFilter} onChange={(e) => setQuery({ code: e.target.value }, { replace: true })}>
            <option value="">all</option>
            {codes.map((c) => (
              <option key={c} value={c}>
                {c} ({findings.filter((f) => f.code === c).length})
              </option>
            ))}
          </select>
        </label>
        <label className="wide">
          Subject or summary contains
          <input
            aria-label="Filter by subject or summary"
            placeholder="e.g. orders or gateway → catalog"
            defaultValue={text}
            onChange={(e) => setQuery({ q: e.target.value }, { replace: true })}
          />
        </label>
        <span className="doctor-run">
          <span className="muted" data-testid="checked-at" data-checked-at={report?.checked_at ?? ''}>
            {at ? (
              <>
                checked at {fmtTime(at).slice(0, 19)} ({fmtSpan(Math.max(0, Date.now() - at.getTime()))} ago)
              </>
            ) : report ? (
              'not checked yet'
            ) : (
              ''
            )}
          </span>
          <button type="button" className="primary" onClick={runNow} disabled={running}>
            {running ? 'Running…' : 'Run now'}
          </button>
        </span>
      </form>

      {runError && <ErrorBox error={runError} what="a fresh report (Run now)" />}
      {last.loading && !report && <Loading what="the doctor's findings" />}
      {last.error && !report && <ErrorBox error={last.error} what="the doctor's findings" />}
      {errors.length > 0 && (
        <div className="state error" role="alert" data-testid="doctor-errors">
          {errors.length === 1 ? 'A check could not run; what it looks at' : `${errors.length} checks could not run; what they look at`} was not
          checked:
          <ul>
            {errors.map((e, i) => (
              <li key={i}>{e}</li>
            ))}
          </ul>
        </div>
      )}
      {report && findings.length === 0 && (
        <Empty>
          <span data-testid="doctor-empty">
            No broken seam found{errors.length ? ' by the checks that ran' : ''}
            {at ? ` (checked at ${fmtTime(at).slice(0, 19)})` : ''}.
          </span>
        </Empty>
      )}
      {findings.length > 0 && shown.length === 0 && (
        <Empty>No findings match these filters — clear the severity, code or text filter.</Empty>
      )}
      {SEVERITIES.map((sev) => {
        const fs = shown.filter((f) => f.severity === sev)
        if (!fs.length) return null
        return (
          <div key={sev} className="finding-group" data-testid={`findings-${sev}`}>
            <h2>
              {TITLES[sev]} <span className="badge">{fs.length}</span>
            </h2>
            {fs.map((f, i) => (
              <FindingCard key={`${f.code}\n${f.subject}\n${i}`} f={f} services={known} />
            ))}
          </div>
        )
      })}
    </section>
  )
}
