// Log severities: the level bands the API filters by, and their colours.

export const SEVERITIES = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const
export const SEVERITY_COLORS: Record<string, string> = {
  TRACE: '#8c959f',
  DEBUG: '#0598bc',
  INFO: '#2da44e',
  WARN: '#bf8700',
  ERROR: '#cf222e',
  FATAL: '#6e0e1e',
  OTHER: '#8250df',
}

// band maps a severity text ("Information", "ERROR2", "warning") to its level band.
export function band(sev: string): string {
  const s = sev.toUpperCase()
  for (const b of ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL']) if (s.startsWith(b)) return b
  if (s === 'CRITICAL' || s === 'EMERGENCY' || s === 'ALERT') return 'FATAL'
  return 'OTHER'
}
