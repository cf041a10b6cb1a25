// All view state lives in the URL's query string, so every view can be shared
// by copying the address.
import { useCallback, useMemo } from 'react'
import { useLocation, useSearch } from 'wouter'

export type QueryUpdate = Record<string, string | string[] | null | undefined>

// useQuery parses the current query string. It reads location.search itself:
// wouter's useSearch() has already percent-decoded it once, which would turn
// an encoded "%" or "&" inside a value into a different query.
export function useQuery(): URLSearchParams {
  const search = useSearch() // subscribes to changes
  return useMemo(() => new URLSearchParams(window.location.search), [search])
}

// safeDecode decodes a path segment, leaving it as is when it is malformed.
export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s)
  } catch {
    return s
  }
}

// href builds a path with query parameters; empty values are dropped.
export function href(path: string, params: QueryUpdate | URLSearchParams = {}): string {
  const qs = new URLSearchParams()
  const entries = params instanceof URLSearchParams ? [...params.entries()] : Object.entries(params)
  for (const [k, v] of entries) {
    if (v === null || v === undefined || v === '') continue
    if (Array.isArray(v)) v.filter((x) => x !== '').forEach((x) => qs.append(k, x))
    else qs.append(k, v)
  }
  const s = qs.toString()
  return s ? `${path}?${s}` : path
}

// useSetQuery returns a function that merges updates into the current query
// string (null or '' removes a key) and navigates there.
export function useSetQuery(): (u: QueryUpdate, opts?: { replace?: boolean; path?: string }) => void {
  const [location, navigate] = useLocation()
  const search = useSearch()
  return useCallback(
    (u, opts = {}) => {
      const qs = new URLSearchParams(window.location.search)
      for (const [k, v] of Object.entries(u)) {
        qs.delete(k)
        if (v === null || v === undefined || v === '') continue
        if (Array.isArray(v)) v.filter((x) => x !== '').forEach((x) => qs.append(k, x))
        else qs.set(k, v)
      }
      navigate(href(opts.path ?? window.location.pathname, qs), { replace: opts.replace })
    },
    // location and search: a new function after each navigation.
    [location, navigate, search],
  )
}
