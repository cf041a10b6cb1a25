import { useCallback, useEffect, useRef, useState } from 'react'
import { getJSON } from './api'
import { useTimeRange } from './time'

export interface Fetched<T> {
  data: T | undefined
  error: Error | undefined
  loading: boolean
  // reload fetches the same url again, keeping the current data meanwhile.
  reload: () => void
}

// useFetch loads url (null: nothing) and reloads whenever it changes; a newer
// request aborts the older one.
export function useFetch<T>(url: string | null): Fetched<T> {
  const [state, setState] = useState<Omit<Fetched<T>, 'reload'> & { url: string | null }>({
    data: undefined,
    error: undefined,
    loading: url !== null,
    url,
  })
  const [tick, setTick] = useState(0)
  const reload = useCallback(() => setTick((t) => t + 1), [])
  useEffect(() => {
    if (url === null) {
      setState({ data: undefined, error: undefined, loading: false, url })
      return
    }
    const ctl = new AbortController()
    setState((s) => ({ ...s, loading: true, error: undefined, url }))
    getJSON<T>(url, ctl.signal).then(
      (data) => setState({ data, error: undefined, loading: false, url }),
      (error: Error) => {
        if (ctl.signal.aborted) return
        setState({ data: undefined, error, loading: false, url })
      },
    )
    return () => ctl.abort()
  }, [url, tick])
  return { data: state.data, error: state.error, loading: state.loading, reload }
}

// useEvery calls fn every ms milliseconds while the page is visible.
export function useEvery(ms: number, fn: () => void) {
  useEffect(() => {
    const id = setInterval(() => {
      if (document.visibilityState === 'visible') fn()
    }, ms)
    return () => clearInterval(id)
  }, [ms, fn])
}

// useOnRefresh calls fn when the time range is re-read (the Refresh button),
// for pages whose data do not depend on the range (alerts, silences).
export function useOnRefresh(fn: () => void) {
  const t = useTimeRange()
  const first = useRef(true)
  useEffect(() => {
    if (first.current) {
      first.current = false
      return
    }
    fn()
  }, [t.start, t.end])
}
