// SLOs: the service level objectives of vigil.yaml's slos:, read back from
// the Sloth-style recording rules they become (sloth_slo_info, slo:*), with
// the state of their multi-window burn-rate alerts.
import { useMemo } from 'react'
import { Link } from 'wouter'
import { apiURL, type AlertingRule, type PromAlerts, type PromMatrix, type RuleGroups } from '../api'
import { ChangeList, toMarker, useChanges } from '../changes'
import { TimeChart, type LineSeries } from '../components/Chart'
import { Empty, ErrorBox, Loading } from '../components/States'
import { fmtNumber, fmtSpanShort, niceStep, promString } from '../format'
import { useFetch, useOnRefresh } from '../hooks'
import { absoluteRange, timeParams, useTimeRange } from '../time'
import { href, useQuery, useSetQuery } from '../url'

interface Vector {
  data: { resultType: 'vector'; result: { metric: Record<string, string>; value: [number, string] }[] }
}

// The burn rates the page and ticket alerts fire at (Sloth's defaults, a
// 30-day period): 2% of the budget in 1h, 5% in 6h, 10% in 1d and 3d.
const THRESHOLDS: { factor: number; label: string; color: string }[] = [
  { factor: 14.4, label: 'page: 14.4× (1h and 5m)', color: '#cf222e' },
  { factor: 6, label: 'page: 6× (6h and 30m)', color: '#e36209' },
  { factor: 3, label: 'ticket: 3× (1d and 2h)', color: '#bf8700' },
  { factor: 1, label: 'ticket: 1× (3d and 6h)', color: '#57606a' },
]

interface SLO {
  id: string
  service: string
  slo: string
  objective: number | null // ratio, e.g. 0.999
  periodDays: number | null
  sli: Map<string, number> // window -> error ratio
  budgetLeft: number | null
  burn: number | null
  // Seconds of the period with recorded SLIs, when less than the period.
  coveredS: number | null
}

const num = (s: string | undefined) => (s === undefined ? null : parseFloat(s))

function byID(v: Vector | undefined): Map<string, { metric: Record<string, string>; value: number }[]> {
  const m = new Map<string, { metric: Record<string, string>; value: number }[]>()
  for (const r of v?.data.result ?? []) {
    const id = r.metric.sloth_id ?? ''
    if (!m.has(id)) m.set(id, [])
    m.get(id)!.push({ metric: r.metric, value: parseFloat(r.value[1]) })
  }
  return m
}

const WINDOW_UNITS: Record<string, number> = { m: 60, h: 3600, d: 86400, w: 604800 }
const windowSeconds = (w: string) => {
  const m = /^(\d+)([mhdw])$/.exec(w)
  return m ? parseInt(m[1], 10) * WINDOW_UNITS[m[2]] : Infinity
}

function pct(ratio: number | null | undefined, digits = 3): string {
  if (ratio === null || ratio === undefined || !isFinite(ratio)) return '–'
  return `${Number((ratio * 100).toFixed(digits))}%`
}

const fmtBurn = (v: number | null | undefined) => (v === null || v === undefined || !isFinite(v) ? '–' : `${fmtNumber(Number(v.toPrecision(3)))}×`)

// The SLI over a window: 1 - error ratio; NaN (no requests) shows as such.
function SLIValue({ err }: { err: number | undefined }) {
  if (err === undefined) return <span className="muted">–</span>
  if (!isFinite(err)) return <span className="muted" title="No events in this window">no traffic</span>
  return <>{pct(1 - err)}</>
}

function BudgetBar({ left }: { left: number | null }) {
  if (left === null || !isFinite(left)) return <span className="muted">–</span>
  const w = Math.max(0, Math.min(1, left))
  const cls = left <= 0 ? 'out' : left < 0.25 ? 'low' : 'ok'
  return (
    <span className="budget">
      <span className={`budgetbar ${cls}`}>
        <span style={{ width: `${w * 100}%` }} />
      </span>
      <span className={left <= 0 ? 'err' : ''}>{pct(left, 1)}</span>
    </span>
  )
}

// Coverage: the period's figures (SLI, budget left) come from the SLIs
// recorded so far; minutes of data judged against a 30-day budget look
// far worse (or better) than the month will, so say how much there is.
function Coverage({ s }: { s: SLO }) {
  if (s.coveredS === null) return null
  return (
    <div className="hint" data-testid="slo-coverage">
      based on {fmtSpanShort(s.coveredS)} of data of the {fmtNumber(s.periodDays ?? 30)} d window
    </div>
  )
}

interface AlertState {
  severity: 'page' | 'ticket'
  names: string[]
  state: 'firing' | 'pending' | 'inactive' | 'none'
}

// alertStates: for each severity, the rules generated for the SLO (their
// expressions select its sloth_id) and the worst state of their alerts.
function alertStates(s: SLO, rules: AlertingRule[], alerts: PromAlerts | undefined): AlertState[] {
  return (['page', 'ticket'] as const).map((severity) => {
    const mine = rules.filter((r) => r.labels?.sloth_severity === severity && r.query.includes(`sloth_id=${promString(s.id)}`))
    const names = [...new Set(mine.map((r) => r.name))]
    const active = (alerts?.data.alerts ?? []).filter(
      (a) =>
        names.includes(a.labels.alertname) &&
        a.labels.sloth_severity === severity &&
        a.labels.sloth_service === s.service &&
        a.labels.sloth_slo === s.slo,
    )
    const state = active.some((a) => a.state === 'firing') ? 'firing' : active.length ? 'pending' : mine.length ? 'inactive' : 'none'
    return { severity, names, state }
  })
}

function AlertBadges({ states }: { states: AlertState[] }) {
  return (
    <span className="chips">
      {states.map((a) => (
        <span
          key={a.severity}
          className={`state-badge ${a.state}`}
          title={a.names.length ? `${a.names.join(', ')}: ${a.state}` : `no ${a.severity} alert (disabled)`}
          data-testid={`slo-${a.severity}-alert`}
        >
          {a.severity}: {a.state === 'none' ? 'off' : a.state}
        </span>
      ))}
    </span>
  )
}

function BurnChart({ s }: { s: SLO }) {
  const t = useTimeRange()
  const setQuery = useSetQuery()
  const start = t.start / 1000
  const end = t.end / 1000
  const step = niceStep(end - start)
  const { data, error, loading } = useFetch<PromMatrix>(
    apiURL('/api/v1/query_range', {
      query: `slo:current_burn_rate:ratio{sloth_id=${promString(s.id)}}`,
      start: start.toFixed(3),
      end: end.toFixed(3),
      step,
    }),
  )
  const changes = useChanges(start, end, s.service)
  if (loading && !data) return <Loading what="the burn rate" />
  if (error) return <ErrorBox error={error} what="the burn rate" />
  const result = data?.data.result ?? []
  if (!result.length) return <Empty>No burn rate recorded in this range — widen the time range; it is recorded once the SLO has traffic.</Empty>
  // The range's ends too, so that the threshold lines span the whole chart.
  const times = [...new Set([start, ...result.flatMap((r) => r.values.map((v) => v[0])), end])].sort((a, b) => a - b)
  const idx = new Map(times.map((x, i) => [x, i]))
  const series: LineSeries[] = result.map((r) => {
    const values: (number | null)[] = times.map(() => null)
    for (const [ts, v] of r.values) {
      const f = parseFloat(v)
      values[idx.get(ts)!] = isFinite(f) ? f : null
    }
    return { label: 'burn rate (5m)', values, color: '#1f6feb' }
  })
  for (const th of THRESHOLDS) series.push({ label: th.label, values: times.map(() => th.factor), color: th.color, dash: [6, 4] })
  return (
    <div data-testid="slo-burn-chart">
      <TimeChart
        times={times}
        series={series}
        xRange={[start, end]}
        height={240}
        yFormat={(v) => `${fmtNumber(v)}×`}
        onSelect={(min, max) => setQuery(absoluteRange(min * 1000, max * 1000))}
        markers={changes.map(toMarker)}
      />
      <ChangeList changes={changes} />
      <p className="hint">
        Burn rate: how fast the error budget is spent, 1× using it up exactly over the period. Page and ticket alerts fire when both windows
        of a pair are above the line. Drag across the chart to zoom in.
      </p>
    </div>
  )
}

function Details({ s, states }: { s: SLO; states: AlertState[] }) {
  const t = useTimeRange()
  const budget = s.objective !== null ? 1 - s.objective : null
  const windows = [...s.sli.entries()].sort((a, b) => windowSeconds(a[0]) - windowSeconds(b[0]))
  const alertNames = [...new Set(states.flatMap((a) => a.names))]
  return (
    <div className="slo-details" data-testid="slo-details">
      <h2>
        {s.service} / {s.slo}
      </h2>
      <dl className="facts">
        <dt>Objective</dt>
        <dd>{pct(s.objective)}</dd>
        <dt>Error budget</dt>
        <dd>
          {pct(budget)} of events over {s.periodDays !== null ? `${fmtNumber(s.periodDays)} days` : 'the period'}
          {s.coveredS !== null && `; so far ${fmtSpanShort(s.coveredS)} of it recorded, which the period's SLI and budget left are based on`}
        </dd>
        <dt>Alerts</dt>
        <dd>
          <AlertBadges states={states} />{' '}
          {alertNames.map((n) => (
            <Link key={n} href={href('/alerts', { q: n })} className="alert-link">
              {n}
            </Link>
          ))}
        </dd>
        <dt>Series</dt>
        <dd>
          <Link href={href('/explore', { ...timeParams(t), query: `{__name__=~"slo:.+", sloth_id=${promString(s.id)}}` })}>
            explore its recorded series
          </Link>
        </dd>
      </dl>
      <h3>Burn rate</h3>
      <BurnChart s={s} />
      <h3>SLI per window</h3>
      <table className="grid slo-windows" data-testid="slo-windows">
        <thead>
          <tr>
            <th>Window</th>
            <th className="num">SLI</th>
            <th className="num">Error ratio</th>
            <th className="num">Burn rate</th>
          </tr>
        </thead>
        <tbody>
          {windows.map(([w, err]) => (
            <tr key={w}>
              <td>{w}</td>
              <td className="num">
                <SLIValue err={err} />
              </td>
              <td className="num">{isFinite(err) ? pct(err) : '–'}</td>
              <td className="num">{budget && isFinite(err) ? fmtBurn(err / budget) : '–'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

export default function SLOs() {
  const t = useTimeRange()
  const q = useQuery()
  const setQuery = useSetQuery()
  const time = (t.end / 1000).toFixed(3)
  const instant = (query: string) => apiURL('/api/v1/query', { query, time })
  const info = useFetch<Vector>(instant('sloth_slo_info'))
  const objective = useFetch<Vector>(instant('slo:objective:ratio'))
  const period = useFetch<Vector>(instant('slo:time_period:days'))
  const sli = useFetch<Vector>(instant('{__name__=~"slo:sli_error:ratio_rate.+"}'))
  const left = useFetch<Vector>(instant('slo:period_error_budget_remaining:ratio'))
  const burn = useFetch<Vector>(instant('slo:current_burn_rate:ratio'))
  // When each SLO's SLIs were first recorded within the longest period, to
  // the minute (a subquery; timestamp() gives the samples' own times).
  const maxDays = Math.max(30, ...(period.data?.data.result ?? []).map((r) => parseFloat(r.value[1])).filter(isFinite))
  const first = useFetch<Vector>(
    instant(`min by (sloth_id) (min_over_time(timestamp(slo:sli_error:ratio_rate5m)[${Math.ceil(maxDays)}d:1m]))`),
  )
  const rules = useFetch<RuleGroups>('/api/v1/rules?type=alert')
  const alerts = useFetch<PromAlerts>('/api/v1/alerts')
  // The queries above follow the time range; these two do not.
  useOnRefresh(() => {
    rules.reload()
    alerts.reload()
  })

  const slos = useMemo(() => {
    const [o, p, e, l, b, f] = [objective, period, sli, left, burn, first].map((x) => byID(x.data))
    const out: SLO[] = (info.data?.data.result ?? []).map((r) => {
      const id = r.metric.sloth_id ?? ''
      const objLabel = num(r.metric.sloth_objective)
      const periodDays = p.get(id)?.[0]?.value ?? null
      const since = f.get(id)?.[0]?.value
      // The subquery finds the first whole minute with a sample: the first
      // sample is up to a minute earlier, so count to the minute, halfway.
      const coveredS = since !== undefined && isFinite(since) ? Math.max(60, Math.round((t.end / 1000 - since + 30) / 60) * 60) : null
      const windows = new Map<string, number>()
      for (const x of e.get(id) ?? []) if (x.metric.sloth_window) windows.set(x.metric.sloth_window, x.value)
      return {
        id,
        service: r.metric.sloth_service ?? '',
        slo: r.metric.sloth_slo ?? '',
        objective: o.get(id)?.[0]?.value ?? (objLabel !== null ? objLabel / 100 : null),
        periodDays,
        sli: windows,
        budgetLeft: l.get(id)?.[0]?.value ?? null,
        burn: b.get(id)?.[0]?.value ?? null,
        coveredS: coveredS !== null && coveredS < (periodDays ?? 30) * 86400 * 0.99 ? coveredS : null,
      }
    })
    return out.sort((a, b) => a.service.localeCompare(b.service) || a.slo.localeCompare(b.slo))
  }, [info.data, objective.data, period.data, sli.data, left.data, burn.data, first.data, t.end])

  const alertRules = useMemo(
    () => (rules.data?.data.groups ?? []).flatMap((g) => g.rules).filter((r): r is AlertingRule => r.type === 'alerting'),
    [rules.data],
  )
  const selectedID = q.get('slo') ?? slos[0]?.id
  const selected = slos.find((s) => s.id === selectedID)
  const periodWindow = (s: SLO) => (s.periodDays !== null ? `${fmtNumber(s.periodDays)}d` : '30d')
  const errors = [info, objective, period, sli, left, burn].map((f) => f.error).filter((e): e is Error => !!e)

  return (
    <section>
      <h1>SLOs</h1>
      <p className="hint">
        Service level objectives from <code>slos:</code> in vigil.yaml, recorded as Sloth-style rules; values at the end of the time range.
      </p>
      {info.loading && !info.data && <Loading what="SLOs" />}
      {errors.length > 0 && <ErrorBox error={errors[0]} what="the SLOs" />}
      {info.data && slos.length === 0 && (
        <Empty>
          No SLOs: add slos: to vigil.yaml (see docs/alerting.md)
          {t.to !== 'now' ? ' — or pick a time range that ends when they were being recorded' : ''}.
        </Empty>
      )}
      {slos.length > 0 && (
        <table className="grid slos" data-testid="slos">
          <thead>
            <tr>
              <th>Service</th>
              <th>SLO</th>
              <th className="num">Objective</th>
              <th className="num">SLI (5m)</th>
              <th className="num">SLI (period)</th>
              <th>Error budget left</th>
              <th className="num">Burn rate</th>
              <th>Alerts</th>
            </tr>
          </thead>
          <tbody>
            {slos.map((s) => (
              <tr
                key={s.id}
                className={`clickable ${s.id === selected?.id ? 'selected' : ''}`}
                data-testid="slo-row"
                onClick={() => setQuery({ slo: s.id })}
              >
                <td>{s.service}</td>
                <td className="name">
                  <Link href={href('/slos', { ...timeParams(t), slo: s.id })} onClick={(e) => e.stopPropagation()}>
                    {s.slo}
                  </Link>
                </td>
                <td className="num">{pct(s.objective)}</td>
                <td className="num">
                  <SLIValue err={s.sli.get('5m')} />
                </td>
                <td className="num" title={`over ${periodWindow(s)}`}>
                  <SLIValue err={s.sli.get(periodWindow(s))} />
                </td>
                <td>
                  <BudgetBar left={s.budgetLeft} />
                  <Coverage s={s} />
                </td>
                <td className={`num ${s.burn !== null && s.burn >= 1 ? 'err' : ''}`}>{fmtBurn(s.burn)}</td>
                <td>
                  <AlertBadges states={alertStates(s, alertRules, alerts.data)} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {selected && <Details s={selected} states={alertStates(selected, alertRules, alerts.data)} />}
    </section>
  )
}
