// PromQL completion: what kind of token the caret is in, and the candidates
// for it. Metric and label names come from the Prometheus API.
import { getJSON, type PromList } from '../api'

export const FUNCTIONS = [
  'abs', 'absent', 'absent_over_time', 'avg', 'avg_over_time', 'bottomk', 'ceil', 'changes', 'clamp', 'clamp_max',
  'clamp_min', 'count', 'count_over_time', 'count_values', 'delta', 'deriv', 'exp', 'floor', 'group',
  'histogram_quantile', 'idelta', 'increase', 'irate', 'label_join', 'label_replace', 'last_over_time', 'ln',
  'log2', 'log10', 'max', 'max_over_time', 'min', 'min_over_time', 'predict_linear', 'quantile',
  'quantile_over_time', 'rate', 'resets', 'round', 'scalar', 'sort', 'sort_desc', 'sqrt', 'stddev',
  'stddev_over_time', 'stdvar', 'sum', 'sum_over_time', 'time', 'timestamp', 'topk', 'vector',
]
const KEYWORDS = ['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless']

export type Context =
  | { kind: 'metric'; prefix: string; from: number }
  | { kind: 'label'; prefix: string; from: number }
  | { kind: 'value'; label: string; prefix: string; from: number; quoted: boolean }
  | { kind: 'none' }

// contextAt finds what the word ending at caret is: a metric or function
// name, a label name (inside {} or by/without (...)), or a label value.
export function contextAt(text: string, caret: number): Context {
  const before = text.slice(0, caret)
  // Inside a string: a label value when it follows label=" .
  let inString = false
  let stringStart = -1
  let braces = 0
  let parenLabels = false
  for (let i = 0; i < before.length; i++) {
    const c = before[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
      continue
    }
    if (c === '"') {
      inString = true
      stringStart = i
    } else if (c === '{') braces++
    else if (c === '}') braces = Math.max(0, braces - 1)
    else if (c === '(') parenLabels = /\b(by|without|on|ignoring|group_left|group_right)\s*$/.test(before.slice(0, i))
    else if (c === ')') parenLabels = false
  }
  if (inString) {
    const m = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(before.slice(0, stringStart))
    if (braces > 0 && m) return { kind: 'value', label: m[1], prefix: before.slice(stringStart + 1), from: stringStart, quoted: true }
    return { kind: 'none' }
  }
  const word = /[a-zA-Z_:][a-zA-Z0-9_:]*$/.exec(before)
  const prefix = word ? word[0] : ''
  const from = caret - prefix.length
  if (braces > 0) {
    const op = /([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*$/.exec(before.slice(0, from))
    if (op && !prefix) return { kind: 'value', label: op[1], prefix: '', from, quoted: false }
    if (op) return { kind: 'none' }
    return { kind: 'label', prefix, from }
  }
  if (parenLabels) return { kind: 'label', prefix, from }
  if (!prefix) return { kind: 'none' }
  return { kind: 'metric', prefix, from }
}

const cache = new Map<string, Promise<string[]>>()
function list(url: string): Promise<string[]> {
  let p = cache.get(url)
  if (!p) {
    p = getJSON<PromList>(url).then((r) => r.data ?? [])
    p.catch(() => cache.delete(url))
    cache.set(url, p)
  }
  return p
}

export interface Suggestion {
  label: string
  detail: string
  insert: string
}

function rank(items: string[], prefix: string, limit = 40): string[] {
  const p = prefix.toLowerCase()
  const starts = items.filter((x) => x.toLowerCase().startsWith(p))
  const contains = p ? items.filter((x) => !x.toLowerCase().startsWith(p) && x.toLowerCase().includes(p)) : []
  return [...starts, ...contains].slice(0, limit)
}

export async function suggest(ctx: Context): Promise<Suggestion[]> {
  switch (ctx.kind) {
    case 'metric': {
      const names = await list('/api/v1/label/__name__/values')
      const metrics = rank(names, ctx.prefix).map((n) => ({ label: n, detail: 'metric', insert: n }))
      const fns = rank(FUNCTIONS, ctx.prefix, 10).map((n) => ({ label: n, detail: 'function', insert: n + '(' }))
      const kws = rank(KEYWORDS, ctx.prefix, 5).map((n) => ({ label: n, detail: 'keyword', insert: n + ' ' }))
      return [...metrics, ...fns, ...kws].filter((s) => s.label !== ctx.prefix).slice(0, 50)
    }
    case 'label': {
      const names = await list('/api/v1/labels')
      return rank(names.filter((n) => n !== '__name__'), ctx.prefix).map((n) => ({ label: n, detail: 'label', insert: n }))
    }
    case 'value': {
      const values = await list(`/api/v1/label/${encodeURIComponent(ctx.label)}/values`)
      return rank(values, ctx.prefix).map((v) => ({ label: v, detail: ctx.label, insert: JSON.stringify(v) }))
    }
    default:
      return []
  }
}

// apply replaces the completed token with the suggestion; it returns the new
// text and caret position.
export function apply(text: string, caret: number, ctx: Context, s: Suggestion): [string, number] {
  if (ctx.kind === 'none') return [text, caret]
  let end = caret
  if (ctx.kind === 'value' && ctx.quoted) {
    // Replace through the closing quote, if there is one already.
    const close = text.indexOf('"', caret)
    if (close >= 0 && !/[,}]/.test(text.slice(caret, close))) end = close + 1
  } else {
    const rest = /^[a-zA-Z0-9_:]*/.exec(text.slice(caret))
    end = caret + (rest ? rest[0].length : 0)
  }
  const next = text.slice(0, ctx.from) + s.insert + text.slice(end)
  return [next, ctx.from + s.insert.length]
}
