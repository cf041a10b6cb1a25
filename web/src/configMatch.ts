// A gray's target (configcentre.Match) as the Config page shows it and
// reads it from its form.
import type { GrayMatch } from './api'

export function matchText(m: GrayMatch | undefined): string {
  if (!m) return ''
  if (m.labels && Object.keys(m.labels).length)
    return `labels ${Object.entries(m.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(', ')}`
  if (m.instances?.length) return `instances ${m.instances.join(', ')}`
  if (m.percent !== undefined) return `${m.percent}% of instances`
  return ''
}

export type MatchKind = 'labels' | 'instances' | 'percent'
export type GuardKind = 'none' | 'slo' | 'promql'

// buildMatch reads the gray form's target: "zone=eu-1, version=2" for
// labels, ids separated by commas or spaces for instances, 0 to 100 for a
// percentage. An error says what is wrong.
export function buildMatch(kind: MatchKind, text: string): GrayMatch | string {
  const t = text.trim()
  if (kind === 'percent') {
    if (!/^\d+$/.test(t)) return 'The percentage is a whole number from 0 to 100.'
    return { percent: parseInt(t, 10) }
  }
  const parts = t.split(/[\s,]+/).filter(Boolean)
  if (!parts.length) return kind === 'labels' ? 'Give at least one label as name=value.' : 'Give at least one instance id.'
  if (kind === 'instances') return { instances: parts }
  const labels: Record<string, string> = {}
  for (const p of t.split(',').map((x) => x.trim()).filter(Boolean)) {
    const i = p.indexOf('=')
    if (i <= 0) return `Label "${p}" is not name=value.`
    labels[p.slice(0, i).trim()] = p.slice(i + 1).trim()
  }
  return { labels }
}

