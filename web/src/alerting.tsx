// Shared by the alerts and silences pages: label and matcher helpers, the
// silence form and the notice shown when no Alertmanager is configured.
import { useEffect, useState } from 'react'
import { ApiError, sendJSON, type AMAlert, type Labels, type Matcher } from './api'
import { fmtTime } from './format'

export type Op = '=' | '!=' | '=~' | '!~'
export const OPS: Op[] = ['=', '!=', '=~', '!~']

export function opOf(m: Matcher): Op {
  const eq = m.isEqual !== false
  return m.isRegex ? (eq ? '=~' : '!~') : eq ? '=' : '!='
}

export function matcherOf(name: string, op: Op, value: string): Matcher {
  return { name, value, isRegex: op === '=~' || op === '!~', isEqual: op === '=' || op === '=~' }
}

// matcherText writes a matcher the way PromQL and amtool do: name="value".
export function matcherText(m: Matcher): string {
  return `${m.name}${opOf(m)}${JSON.stringify(m.value)}`
}

// parseMatcher reads name=value, name!=value, name=~regex or name!~regex; the
// value may be double-quoted (with backslash escapes).
export function parseMatcher(s: string): Matcher | string {
  const m = /^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$/.exec(s)
  if (!m) return `cannot read matcher "${s}": write name=value, name!=value, name=~regex or name!~regex`
  let value = m[3]
  if (value.startsWith('"')) {
    try {
      value = JSON.parse(value) as string
    } catch {
      return `cannot read the quoted value in "${s}"`
    }
  }
  return matcherOf(m[1], m[2] as Op, value)
}

// labelsText is a label set as {a="b", c="d"}, sorted by name: a stable key
// for an alert and how it is shown.
export function labelsText(labels: Labels): string {
  return `{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(', ')}}`
}

function regexMatches(re: string, v: string): boolean {
  try {
    return new RegExp(`^(?:${re})$`).test(v)
  } catch {
    return false
  }
}

// matches reports whether a label set satisfies every matcher, as
// Alertmanager decides (an absent label has the empty value).
export function matches(matchers: Matcher[], labels: Labels): boolean {
  return matchers.every((m) => {
    const v = labels[m.name] ?? ''
    const hit = m.isRegex ? regexMatches(m.value, v) : v === m.value
    return m.isEqual === false ? !hit : hit
  })
}

// isSubset: every label of a is in b with the same value.
export function isSubset(a: Labels, b: Labels): boolean {
  return Object.entries(a).every(([k, v]) => b[k] === v)
}

const UNITS: Record<string, number> = { ms: 1, s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 604800e3 }

// parseDuration reads Prometheus-style durations: 2h, 90m, 1h30m, 1d.
export function parseDuration(s: string): number | null {
  const t = s.trim()
  if (!t) return null
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y
  let pos = 0
  let ms = 0
  while (pos < t.length) {
    re.lastIndex = pos
    const m = re.exec(t)
    if (!m) return null
    ms += parseFloat(m[1]) * UNITS[m[2]]
    pos = re.lastIndex
  }
  return ms > 0 ? ms : null
}

// fmtSpan is a coarse distance between two instants: 3m, 2h 5m, 4d 1h.
export function fmtSpan(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000))
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m`
  const h = Math.floor(m / 60)
  if (h < 48) return m % 60 ? `${h}h ${m % 60}m` : `${h}h`
  const d = Math.floor(h / 24)
  return h % 24 ? `${d}d ${h % 24}h` : `${d}d`
}

export function LabelChips({ labels, omit = [] }: { labels: Labels; omit?: string[] }) {
  const keys = Object.keys(labels)
    .filter((k) => !omit.includes(k))
    .sort()
  if (!keys.length) return <span className="muted">no labels</span>
  return (
    <span className="chips">
      {keys.map((k) => (
        <span key={k} className="chip mono">
          {k}={JSON.stringify(labels[k])}
        </span>
      ))}
    </span>
  )
}

export function MatcherChips({ matchers }: { matchers: Matcher[] }) {
  return (
    <span className="chips" data-testid="silence-matchers">
      {matchers.map((m, i) => (
        <span key={i} className="chip mono">
          {matcherText(m)}
        </span>
      ))}
    </span>
  )
}

// No Alertmanager: /api/v2 answers 404. vigil itself always serves it (its
// built-in Alertmanager), so this means a vigil without one or a proxy that
// does not pass the path on.
export function isNotConfigured(e: Error | undefined): boolean {
  return e instanceof ApiError && e.status === 404
}

export function NoAlertmanager({ what }: { what: string }) {
  return (
    <div className="state empty" data-testid="no-alertmanager">
      No Alertmanager answers at /api/v2, so {what}. vigil's built-in Alertmanager serves it, configured by{' '}
      <code>alertmanager_config_file</code> in vigil.yaml (see docs/alerting.md); a proxy in front of vigil must pass /api/v2/ on.
    </div>
  )
}

const AUTHOR_KEY = 'vigil.silence.author'

function savedAuthor(): string {
  try {
    return localStorage.getItem(AUTHOR_KEY) ?? ''
  } catch {
    return ''
  }
}

interface Row {
  name: string
  op: Op
  value: string
}

// SilenceForm creates a silence through Alertmanager's v2 API. initial are
// the matchers it starts with (e.g. an alert's labels); alerts, when known,
// give a live count of the current alerts the matchers select.
export function SilenceForm(props: {
  initial: Matcher[]
  alerts?: AMAlert[]
  onCreated: (id: string) => void
  onCancel: () => void
}) {
  const [rows, setRows] = useState<Row[]>(() =>
    props.initial.length ? props.initial.map((m) => ({ name: m.name, op: opOf(m), value: m.value })) : [{ name: '', op: '=', value: '' }],
  )
  const [duration, setDuration] = useState('2h')
  const [author, setAuthor] = useState(savedAuthor)
  const [comment, setComment] = useState('')
  const [error, setError] = useState('')
  const [busy, setBusy] = useState(false)

  // A message about the form as it was submitted goes once it is edited.
  useEffect(() => setError(''), [rows, duration, author, comment])

  const used = rows.filter((r) => r.name.trim() !== '')
  const matchers = used.map((r) => matcherOf(r.name.trim(), r.op, r.value))
  const durMs = parseDuration(duration)
  const selected = props.alerts && matchers.length ? props.alerts.filter((a) => matches(matchers, a.labels)).length : null

  const update = (i: number, r: Partial<Row>) => setRows(rows.map((x, j) => (j === i ? { ...x, ...r } : x)))

  const submit = async () => {
    if (!matchers.length) return setError('Add at least one matcher.')
    const bad = used.find((r) => !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(r.name.trim()))
    if (bad) return setError(`"${bad.name}" is not a label name: letters, digits and _, not starting with a digit.`)
    if (matchers.every((m) => (m.isRegex ? regexMatches(m.value, '') : m.value === '') === (m.isEqual !== false)))
      return setError('These matchers also match alerts without those labels: give at least one matcher that needs a value.')
    if (durMs === null) return setError(`"${duration}" is not a duration: write e.g. 2h, 30m, 1d or 1h30m.`)
    if (!author.trim()) return setError('Say who creates the silence (author).')
    if (!comment.trim()) return setError('Say why in the comment: whoever sees the silence later needs to know.')
    setError('')
    setBusy(true)
    try {
      const now = Date.now()
      const res = await sendJSON<{ silenceID: string }>('POST', '/api/v2/silences', {
        matchers,
        startsAt: new Date(now).toISOString(),
        endsAt: new Date(now + durMs).toISOString(),
        createdBy: author.trim(),
        comment: comment.trim(),
      })
      try {
        localStorage.setItem(AUTHOR_KEY, author.trim())
      } catch {
        // storage unavailable: nothing to remember
      }
      props.onCreated(res.silenceID)
    } catch (e) {
      setError(isNotConfigured(e as Error) ? 'No Alertmanager answers at /api/v2: silences cannot be created here.' : (e as Error).message)
    } finally {
      setBusy(false)
    }
  }

  return (
    <form
      className="silence-form"
      data-testid="silence-form"
      onSubmit={(e) => {
        e.preventDefault()
        void submit()
      }}
    >
      <h3>New silence</h3>
      <fieldset className="matchers">
        <legend>Matchers — alerts with all of these are silenced</legend>
        {rows.map((r, i) => (
          <div className="matcher-row" key={i} data-testid="matcher-row">
            <input aria-label="Label name" placeholder="label" value={r.name} onChange={(e) => update(i, { name: e.target.value })} />
            <select aria-label="Operator" value={r.op} onChange={(e) => update(i, { op: e.target.value as Op })}>
              {OPS.map((o) => (
                <option key={o} value={o}>
                  {o}
                </option>
              ))}
            </select>
            <input
              aria-label="Label value"
              className="value"
              placeholder={r.op.endsWith('~') ? 'regular expression' : 'value'}
              value={r.value}
              onChange={(e) => update(i, { value: e.target.value })}
            />
            <button type="button" title="Remove this matcher" aria-label="Remove matcher" onClick={() => setRows(rows.filter((_, j) => j !== i))}>
              ×
            </button>
          </div>
        ))}
        <button type="button" className="linkish" onClick={() => setRows([...rows, { name: '', op: '=', value: '' }])}>
          + add matcher
        </button>
        {selected !== null && (
          <p className="hint" data-testid="silence-preview">
            Selects {selected} of the {props.alerts!.length} alerts Alertmanager has now.
          </p>
        )}
      </fieldset>
      <div className="form-grid">
        <label>
          Duration
          <input aria-label="Duration" value={duration} onChange={(e) => setDuration(e.target.value)} placeholder="2h" />
          <span className="hint">{durMs !== null ? `until ${fmtTime(Date.now() + durMs).slice(0, 19)}` : 'e.g. 2h, 30m, 1d'}</span>
        </label>
        <label>
          Author
          <input aria-label="Author" value={author} onChange={(e) => setAuthor(e.target.value)} placeholder="your name" />
        </label>
        <label className="wide">
          Comment
          <textarea aria-label="Comment" rows={2} value={comment} onChange={(e) => setComment(e.target.value)} placeholder="why, and a ticket link" />
        </label>
      </div>
      {error && (
        <p className="form-error" role="alert">
          {error}
        </p>
      )}
      <div className="actions">
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create silence'}
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  )
}
