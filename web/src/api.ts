// Typed access to vigil's HTTP APIs. Every call goes to the same origin.

export type Params = Record<string, string | number | string[] | undefined | null>

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message)
  }
}

export function apiURL(path: string, params: Params = {}): string {
  const qs = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x))
    else qs.append(k, String(v))
  }
  const s = qs.toString()
  return s ? `${path}?${s}` : path
}

// getJSON fetches url and decodes it, turning vigil's error envelopes
// (Prometheus-style {"error": ...} and Jaeger-style {"errors": [{msg}]}) into
// an ApiError carrying the server's message.
export async function getJSON<T>(url: string, signal?: AbortSignal): Promise<T> {
  const resp = await fetch(url, { signal, headers: { Accept: 'application/json' } })
  const text = await resp.text()
  let body: unknown
  try {
    body = text ? JSON.parse(text) : null
  } catch {
    throw new ApiError(`${resp.status} ${resp.statusText}: not JSON from ${url.split('?')[0]}`, resp.status)
  }
  if (!resp.ok) {
    const b = body as { error?: string; errors?: { msg?: string }[] } | null
    const msg = b?.error ?? b?.errors?.[0]?.msg ?? resp.statusText
    throw new ApiError(`${resp.status}: ${msg}`, resp.status)
  }
  return body as T
}

// ---- Jaeger shapes ----

export interface KeyValue {
  key: string
  type: string
  value: unknown
}

export interface JaegerSpan {
  traceID: string
  spanID: string
  operationName: string
  references: { refType: 'CHILD_OF' | 'FOLLOWS_FROM'; traceID: string; spanID: string }[] | null
  startTime: number // µs
  duration: number // µs
  tags: KeyValue[] | null
  logs: { timestamp: number; fields: KeyValue[] }[] | null
  processID: string
  warnings: string[] | null
}

export interface JaegerTrace {
  traceID: string
  spans: JaegerSpan[]
  processes: Record<string, { serviceName: string; tags: KeyValue[] | null }>
  warnings: string[] | null
}

export interface TraceSummary {
  traceID: string
  rootService: string
  rootName: string
  start: string
  durationMs: number
  spanCount: number
  errorCount: number
  services: { name: string; spans: number; errors: number }[]
}

// ---- logs ----

export interface LogRecord {
  timestamp: string
  severity: string
  severity_number?: number
  body: unknown
  service: string
  trace_id: string
  span_id: string
  attributes?: Record<string, unknown>
  resource?: Record<string, unknown>
}

export interface LogsPage {
  data: LogRecord[]
  next_cursor?: string
}

export interface LogHistogram {
  data: { step: number; total: number; buckets: { time: number; counts: Record<string, number> }[] }
}

// ---- RED and service map ----

export type Point = [number, number | null]

export interface RED {
  name: string
  kind?: string
  rate: number | null
  errorRatio: number | null
  p50: number | null
  p95: number | null
  p99: number | null
  series?: { rate?: Point[]; errorRatio?: Point[]; p99?: Point[] }
}

// covered: the seconds before end that rates are over (where spans exist,
// when that is less than the range).
export interface REDServices {
  data: { start: number; end: number; step: number; covered?: number; services: RED[] }
}

export interface REDOperations {
  data: { start: number; end: number; step: number; covered?: number; operations: RED[] }
}

export interface ServiceMap {
  data: {
    nodes: { id: string; rate?: number | null; errorRatio?: number | null }[]
    edges: { source: string; target: string; rate: number | null; errorRatio: number | null; calls?: number }[]
    covered?: number
  }
}

// ---- Prometheus ----

export interface PromMatrix {
  status: string
  data: { resultType: 'matrix'; result: { metric: Record<string, string>; values: [number, string][] }[] }
}

export type PromInstant =
  | { resultType: 'vector'; result: { metric: Record<string, string>; value: [number, string] }[] }
  | { resultType: 'scalar' | 'string'; result: [number, string] }
  | { resultType: 'matrix'; result: { metric: Record<string, string>; values: [number, string][] }[] }

export interface PromList {
  status: string
  data: string[]
}

// sendJSON sends a request with an optional JSON body and decodes the answer
// like getJSON. Alertmanager's API reports errors as a bare JSON string or as
// plain text; both become the ApiError's message.
export async function sendJSON<T>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  return sendBody<T>(method, url, body === undefined ? undefined : JSON.stringify(body), body === undefined ? undefined : 'application/json', headers)
}

// sendBody sends body as it is, with its Content-Type, and decodes the
// answer like sendJSON.
export async function sendBody<T>(
  method: string,
  url: string,
  body: string | undefined,
  contentType: string | undefined,
  headers: Record<string, string> = {},
): Promise<T> {
  const resp = await fetch(url, {
    method,
    headers: { Accept: 'application/json', ...(contentType ? { 'Content-Type': contentType } : {}), ...headers },
    body,
  })
  const text = await resp.text()
  let parsed: unknown = null
  try {
    parsed = text ? JSON.parse(text) : null
  } catch {
    parsed = text
  }
  if (!resp.ok) {
    const b = parsed as { error?: string; message?: string; errors?: { msg?: string }[] } | string | null
    const msg = typeof b === 'string' ? b.trim() : (b?.error ?? b?.message ?? b?.errors?.[0]?.msg ?? resp.statusText)
    throw new ApiError(`${resp.status}: ${msg || resp.statusText}`, resp.status)
  }
  return parsed as T
}

// ---- rules and alerts (Prometheus /api/v1) ----

export type Labels = Record<string, string>

export interface PromAlert {
  labels: Labels
  annotations: Labels
  state: 'firing' | 'pending' | 'inactive'
  activeAt?: string
  value?: string
}

export interface AlertingRule {
  type: 'alerting'
  name: string
  query: string
  duration?: number
  labels?: Labels
  annotations?: Labels
  state: 'firing' | 'pending' | 'inactive'
  health: string
  lastError?: string
  alerts?: PromAlert[]
}

export interface RecordingRule {
  type: 'recording'
  name: string
  query: string
  health: string
  lastError?: string
}

export interface RuleGroups {
  data: { groups: { name: string; file: string; rules: (AlertingRule | RecordingRule)[] }[] }
}

export interface PromAlerts {
  data: { alerts: PromAlert[] }
}

// ---- Alertmanager v2 ----

export interface Matcher {
  name: string
  value: string
  isRegex: boolean
  isEqual?: boolean // absent means true
}

export interface Silence {
  id: string
  status: { state: 'active' | 'pending' | 'expired' }
  matchers: Matcher[]
  startsAt: string
  endsAt: string
  updatedAt?: string
  createdBy: string
  comment: string
}

export interface AMAlert {
  labels: Labels
  annotations: Labels
  fingerprint?: string
  startsAt?: string
  generatorURL?: string
  status: { state: 'active' | 'suppressed' | 'unprocessed'; silencedBy: string[] | null; inhibitedBy: string[] | null }
}

// ---- the doctor (/api/doctor) ----

export type DoctorSeverity = 'critical' | 'warning' | 'info'

export interface DoctorFinding {
  code: string
  severity: DoctorSeverity
  // What is broken: a service, a target, a rule, a route, a hop ("a → b").
  subject: string
  evidence: {
    summary: string
    values?: Record<string, number>
    window?: string
    samples?: string[] // trace ids, series, metric names, label values
  }
  cause: string
  fix: string
}

export interface DoctorReport {
  findings: DoctorFinding[]
  checked_at: string // zero time (0001-...) before the first run
  errors?: string[] // checks that could not run
}

type DoctorListener = (r: DoctorReport) => void
const doctorListeners = new Set<DoctorListener>()

// publishDoctorReport hands a report fetched by one view (the doctor page's
// "Run now") to the others (the count in the navigation), so they agree.
export function publishDoctorReport(r: DoctorReport) {
  doctorListeners.forEach((fn) => fn(r))
}

// onDoctorReport subscribes to published reports; it returns the unsubscribe.
export function onDoctorReport(fn: DoctorListener): () => void {
  doctorListeners.add(fn)
  return () => doctorListeners.delete(fn)
}

// newerReport returns the more recent of two reports (by checked_at).
export function newerReport(a: DoctorReport | undefined, b: DoctorReport | undefined): DoctorReport | undefined {
  if (!a || !b) return a ?? b
  return Date.parse(b.checked_at) > Date.parse(a.checked_at) ? b : a
}

// ---- The cluster (GET /api/v1/cluster) ----

export interface ClusterMember {
  id: string
  address: string
  state: 'leader' | 'follower' | 'candidate' | 'shutdown' | 'unknown' | string
  voter: boolean
  // Known only for the member answering; 0 for the others.
  commit_index: number
  applied_index: number
  last_contact: string | null
}

export interface ClusterStatus {
  status: 'success'
  data: { leader: string; term: number; members: ClusterMember[] }
}

// ---- The configuration centre (/api/v1/config, /api/v1/changes) ----

export type ContentType = 'text' | 'json' | 'yaml'

export interface GrayMatch {
  labels?: Record<string, string>
  instances?: string[]
  percent?: number
}

export interface ActiveGray {
  version: number
  match: GrayMatch
  guard?: unknown
  author: string
  message: string
  started: string
}

// An item as GET /api/v1/config lists it: its formal version and its gray.
export interface ConfigSummary {
  namespace: string
  group: string
  key: string
  version: number
  content_type: ContentType
  md5: string
  author: string
  message: string
  time: string
  versions: number
  gray?: ActiveGray
}

// A version as GET .../history lists it, newest first.
export interface ConfigVersion {
  version: number
  content: string
  content_type: ContentType
  md5: string
  gray: boolean
  action: string
  author: string
  message: string
  time: string
  principal?: string
  from?: number
  match?: GrayMatch
  guard?: unknown
  formal: boolean
  active_gray: boolean
}

// A change event of GET /api/v1/changes: a config write or gray step
// (kind "config"), or a deploy (kind "deploy").
export interface Change {
  time: string
  kind: 'config' | 'deploy' | string
  action: string
  item: string
  version: number
  author: string
  message: string
  principal?: string
  service?: string
  instance?: string
  from?: string
  to?: string
}
