// Change events (/api/v1/changes) as chart markers: their kind and name,
// and which of them concern a service. changes.tsx fetches and lists them.
import type { Change } from './api'
import { fmtTime } from './format'

// A change's kind on a chart: a deploy, a config write (put, rollback), a
// step of a gray rollout (gray, promote, abort), or an instance joining or
// leaving the registry.
export type MarkerKind = 'deploy' | 'config' | 'gray' | 'registry'

export interface ChangeMarker {
  time: number // unix seconds
  kind: MarkerKind
  label: string
}

const GRAY_STEPS = new Set(['gray', 'promote', 'abort'])

export function markerKind(c: Change): MarkerKind {
  if (c.kind === 'deploy' || c.kind === 'registry') return c.kind
  return GRAY_STEPS.has(c.action) ? 'gray' : 'config'
}

export const KIND_NAMES: Record<MarkerKind, string> = { deploy: 'deploy', config: 'config', gray: 'gray step', registry: 'registry' }

// changeLabel names a change in one line: what, where, which version, who.
export function changeLabel(c: Change): string {
  const kind = markerKind(c)
  const who = c.author ? ` by ${c.author}` : ''
  const msg = c.message ? `: ${c.message}` : ''
  if (kind === 'deploy') {
    const where = c.instance ? `${c.service ?? ''} (${c.instance})` : (c.service ?? '')
    return `deploy ${where} ${c.from ?? '?'} → ${c.to ?? '?'} (seen in ${c.author || 'build info'})`
  }
  if (kind === 'registry') {
    // The message is the address on a join, the reason on a leave.
    const version = c.to || c.from
    return `${c.service ?? ''} (${c.instance ?? ''}) ${c.action === 'join' ? 'joined' : 'left'}${version ? ` at ${version}` : ''}${msg}`
  }
  const action = kind === 'gray' ? `gray step ${c.action}` : `config ${c.action}`
  return `${action} ${c.item} v${c.version}${who}${msg}`
}

export function toMarker(c: Change): ChangeMarker {
  return { time: Date.parse(c.time) / 1000, kind: markerKind(c), label: `${fmtTime(new Date(c.time)).slice(0, 19)} ${changeLabel(c)}` }
}

// forService keeps the changes of a service: its deploys and registry
// joins and leaves, and the config changes of the items it applies or that
// are named after it.
export function forService(list: Change[], service: string, applied: Set<string>): Change[] {
  return list.filter((c) =>
    c.kind === 'deploy' || c.kind === 'registry' ? c.service === service : applied.has(c.item) || itemNames(c.item, service),
  )
}

// itemNames reports whether a config item's address (namespace/group/key)
// has the service's name as one of its parts.
function itemNames(item: string, service: string): boolean {
  return item.split('/').includes(service)
}

