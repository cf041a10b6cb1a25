// The UI's parsing logic, without a browser.
import { expect, test } from '@playwright/test'
import { apply, contextAt, type Context } from '../src/pages/promqlComplete'
import { parseTags } from '../src/tags'
import { resolveTime } from '../src/time'
import { band } from '../src/severity'
import { fmtAxisTimes, fmtSpanShort } from '../src/format'
import type { Change } from '../src/api'
import { changeLabel, forService, markerKind } from '../src/changeEvents'
import { buildMatch, matchText } from '../src/configMatch'

test('parseTags reads key=value pairs, quoted values and rejects the rest', () => {
  expect(parseTags('')).toEqual({})
  expect(parseTags('http.status_code=500 error=true')).toEqual({ 'http.status_code': '500', error: 'true' })
  expect(parseTags('msg="two words" q="say \\"hi\\""')).toEqual({ msg: 'two words', q: 'say "hi"' })
  expect(parseTags('k=')).toEqual({ k: '' })
  expect(typeof parseTags('novalue')).toBe('string')
})

test('resolveTime: relative, absolute milliseconds, invalid', () => {
  const now = 1_700_000_000_000
  expect(resolveTime('now', now)).toBe(now)
  expect(resolveTime('now-15m', now)).toBe(now - 15 * 60e3)
  expect(resolveTime('now-1.5h', now)).toBe(now - 1.5 * 3600e3)
  expect(resolveTime('1699999999000', now)).toBe(1699999999000)
  expect(resolveTime('yesterday', now)).toBeNull()
})

test('severity bands', () => {
  expect(band('ERROR2')).toBe('ERROR')
  expect(band('Information')).toBe('INFO')
  expect(band('warning')).toBe('WARN')
  expect(band('')).toBe('OTHER')
})

test('PromQL completion contexts', () => {
  const at = (s: string) => contextAt(s.replace('|', ''), s.indexOf('|'))
  expect(at('rat|')).toMatchObject({ kind: 'metric', prefix: 'rat', from: 0 })
  expect(at('sum(rate(traces_sp|')).toMatchObject({ kind: 'metric', prefix: 'traces_sp', from: 9 })
  expect(at('up{jo|')).toMatchObject({ kind: 'label', prefix: 'jo' })
  expect(at('up{job="a", inst|')).toMatchObject({ kind: 'label', prefix: 'inst' })
  expect(at('up{job=|')).toMatchObject({ kind: 'value', label: 'job', quoted: false })
  expect(at('up{job="sh|')).toMatchObject({ kind: 'value', label: 'job', prefix: 'sh', quoted: true })
  expect(at('up{job=~"sh|')).toMatchObject({ kind: 'value', label: 'job', prefix: 'sh' })
  expect(at('sum by (serv|')).toMatchObject({ kind: 'label', prefix: 'serv' })
  expect(at('sum(up) by (a) + rat|')).toMatchObject({ kind: 'metric', prefix: 'rat' })
  expect(at('up{job="a b|')).toMatchObject({ kind: 'value', prefix: 'a b' })
  expect(at('"free text|').kind).toBe('none')
  expect(at('rate(x[5m]) |').kind).toBe('none')
})

test('PromQL completion inserts', () => {
  const run = (s: string, insert: string) => {
    const text = s.replace('|', '')
    const caret = s.indexOf('|')
    const ctx: Context = contextAt(text, caret)
    const [next, pos] = apply(text, caret, ctx, { label: insert, detail: '', insert })
    return next.slice(0, pos) + '|' + next.slice(pos)
  }
  expect(run('ra|', 'rate(')).toBe('rate(|')
  expect(run('up{jo|}', 'job')).toBe('up{job|}')
  expect(run('up{job="sh|"}', '"shop"')).toBe('up{job="shop"|}')
  expect(run('up{job=|}', '"shop"')).toBe('up{job="shop"|}')
  expect(run('sum(rate(traces_sp|[1m]))', 'traces_span_metrics_calls_total')).toBe('sum(rate(traces_span_metrics_calls_total|[1m]))')
})

test('chart axes in 24-hour time, with the date across days', () => {
  // Local times, whatever the machine's zone.
  const at = (y: number, mo: number, d: number, h: number, mi: number, s = 0) => new Date(y, mo - 1, d, h, mi, s).getTime() / 1000
  expect(fmtAxisTimes([at(2026, 1, 15, 13, 0), at(2026, 1, 15, 14, 30), at(2026, 1, 15, 23, 45)], 3600)).toEqual(['13:00', '14:30', '23:45'])
  expect(fmtAxisTimes([at(2026, 1, 15, 13, 0, 5), at(2026, 1, 15, 13, 0, 35)], 30)).toEqual(['13:00:05', '13:00:35'])
  expect(fmtAxisTimes([at(2026, 1, 15, 22, 0), at(2026, 1, 16, 2, 0)], 4 * 3600)).toEqual(['01-15 22:00', '01-16 02:00'])
  expect(fmtAxisTimes([at(2026, 1, 15, 0, 0), at(2026, 1, 16, 0, 0)], 86400)).toEqual(['01-15', '01-16'])
  for (const v of fmtAxisTimes([at(2026, 1, 15, 0, 0), at(2026, 1, 15, 12, 0), at(2026, 1, 15, 18, 0)], 6 * 3600)) expect(v).not.toMatch(/am|pm/i)
})

test('spans of time in their largest units', () => {
  expect(fmtSpanShort(45)).toBe('45 s')
  expect(fmtSpanShort(12 * 60 + 10)).toBe('12 min')
  expect(fmtSpanShort(3 * 3600 + 20 * 60)).toBe('3 h 20 min')
  expect(fmtSpanShort(30 * 86400)).toBe('30 d')
})

test('change events: kinds, names, and which concern a service', () => {
  const at = '2026-12-07T12:00:00Z'
  const put: Change = { time: at, kind: 'config', action: 'put', item: 'shop/payments/settings', version: 3, author: 'ann', message: 'slower' }
  const gray: Change = { ...put, action: 'abort', item: 'shop/catalog/flags', author: 'vigil-guard', message: '' }
  const deploy: Change = { time: at, kind: 'deploy', action: 'deploy', item: '', version: 0, author: 'traces_service_build_info', message: '', service: 'orders', instance: 'o-1', from: '1.4.2', to: '1.5.0' }
  const join: Change = { time: at, kind: 'registry', action: 'join', item: '', version: 0, author: 'vigil-registry', message: '127.0.0.1:8084', service: 'payments', instance: 'payments-1', to: '1.2.0' }
  const leave: Change = { ...join, action: 'leave', message: 'TTL expired', to: undefined, from: '1.2.0' }
  expect([put, gray, deploy, join].map(markerKind)).toEqual(['config', 'gray', 'deploy', 'registry'])
  expect(changeLabel(join)).toBe('payments (payments-1) joined at 1.2.0: 127.0.0.1:8084')
  expect(changeLabel(leave)).toBe('payments (payments-1) left at 1.2.0: TTL expired')
  expect(forService([put, join, leave], 'payments', new Set())).toEqual([put, join, leave])
  expect(forService([join, leave], 'orders', new Set())).toEqual([])
  expect(changeLabel(put)).toBe('config put shop/payments/settings v3 by ann: slower')
  expect(changeLabel(gray)).toBe('gray step abort shop/catalog/flags v3 by vigil-guard')
  expect(changeLabel(deploy)).toBe('deploy orders (o-1) 1.4.2 → 1.5.0 (seen in traces_service_build_info)')
  const all = [put, gray, deploy]
  // Named after the service (a part of the item's address), applied by it, or its deploy.
  expect(forService(all, 'payments', new Set())).toEqual([put])
  expect(forService(all, 'orders', new Set(['shop/catalog/flags']))).toEqual([gray, deploy])
  expect(forService(all, 'shop-payments', new Set())).toEqual([])
})

test('gray targets: read from the form, shown as text', () => {
  expect(buildMatch('labels', 'zone=eu-1, version = 1.5.0')).toEqual({ labels: { zone: 'eu-1', version: '1.5.0' } })
  expect(buildMatch('labels', 'zone')).toBe('Label "zone" is not name=value.')
  expect(buildMatch('instances', 'pod-a, pod-b pod-c')).toEqual({ instances: ['pod-a', 'pod-b', 'pod-c'] })
  expect(buildMatch('instances', ' ')).toBe('Give at least one instance id.')
  expect(buildMatch('percent', '10')).toEqual({ percent: 10 })
  expect(typeof buildMatch('percent', 'ten')).toBe('string')
  expect(matchText({ labels: { zone: 'eu-1' } })).toBe('labels zone=eu-1')
  expect(matchText({ instances: ['a', 'b'] })).toBe('instances a, b')
  expect(matchText({ percent: 0 })).toBe('0% of instances')
})
