// parseTags reads `key=value key2="value with spaces"` into Jaeger's tags
// object; it returns an error message for anything else.
export function parseTags(s: string): Record<string, string> | string {
  const out: Record<string, string> = {}
  const re = /\s*([^=\s]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/y
  let pos = 0
  s = s.trim()
  while (pos < s.length) {
    re.lastIndex = pos
    const m = re.exec(s)
    if (!m) return `cannot read tags at "${s.slice(pos)}": write key=value, quote values with spaces`
    out[m[1]] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]
    pos = re.lastIndex
  }
  return out
}
