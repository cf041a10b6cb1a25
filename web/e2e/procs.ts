// Spawning vigil for the browser tests: free ports, `bin/vigil` processes
// whose output goes to test-results/<name>.log, stopping them as Ctrl-C
// does, and waiting for a condition. The global setup starts the shared
// server and demo with these; a spec that needs a vigil of its own (one
// whose demo runs a fault, which the shared healthy demo must not) too.
import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '../..')
export const bin = join(root, 'bin/vigil')
export const logDir = resolve(import.meta.dirname, '../test-results')

// Ports handed out so far: a port is free again once its probe closes, and
// the next probe may get it back before vigil has bound it. (Per process:
// the global setup and each worker have their own; the OS hands out free
// ports and freeRange picks at random, so they rarely meet.)
const taken = new Set<number>()

export async function freePort(): Promise<number> {
  for (;;) {
    const port = await probePort()
    if (!taken.has(port)) {
      taken.add(port)
      return port
    }
  }
}

function probePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer()
    s.unref()
    s.on('error', fail)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => ok(port))
    })
  })
}

function portFree(port: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = createServer()
    s.unref()
    s.on('error', () => ok(false))
    s.listen(port, '127.0.0.1', () => s.close(() => ok(true)))
  })
}

// The demo takes four consecutive ports from --port-base.
export async function freeRange(n: number): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 20000 + Math.floor(Math.random() * 30000)
    const ports = Array.from({ length: n }, (_, k) => base + k)
    if (ports.some((p) => taken.has(p))) continue
    const checks = await Promise.all(ports.map(portFree))
    if (checks.every(Boolean)) {
      ports.forEach((p) => taken.add(p))
      return base
    }
  }
  throw new Error(`no ${n} consecutive free ports`)
}

// start runs bin/vigil with args (and env added to the environment), its
// output in test-results/<name>.log.
export function start(name: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  mkdirSync(logDir, { recursive: true })
  const log = createWriteStream(join(logDir, `${name}.log`))
  const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
  p.stdout!.pipe(log)
  p.stderr!.pipe(log)
  return p
}

// stop ends p as Ctrl-C does (SIGTERM), killing it after 10 s.
export async function stop(p: ChildProcess | undefined) {
  if (!p || p.exitCode !== null || p.signalCode !== null) return
  const exited = new Promise((ok) => p.once('exit', ok))
  p.kill('SIGTERM')
  const timer = setTimeout(() => p.kill('SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

export async function until(what: string, timeoutMs: number, check: () => Promise<boolean>) {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (e) {
      last = e
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}${last ? `: ${last}` : ''} (logs in ${logDir})`)
}

export const getJSON = async (url: string) => {
  const r = await fetch(url)
  return r.ok ? r.json() : null
}
