import { writeSync } from 'node:fs';

/**
 * Test-only: the environment variable that makes the run-directory writers pause at named points, so the
 * fault-injection tests can kill -9 a real process inside a window that is otherwise microseconds wide.
 *
 * `WRN_TEST_FAULT_POINTS="last:staged=800,best:filled@2=60000"` pauses 800 ms each time the process reaches
 * last:staged, and 60 s the second time it reaches best:filled (hits are counted per process); `*=20` pauses at
 * every point. At a point that pauses, the process first writes `wrn-fault-point <name>` to stderr (synchronously,
 * so the line is out before the pause). Points: `<checkpoint>:filled` (files written, no manifest yet),
 * `<checkpoint>:staged` (staging whole), `<checkpoint>:moved-previous` (old one moved to .prev),
 * `<checkpoint>:swapped` (new one in place, .prev not yet removed) for checkpoint names last, best, epoch-K; and
 * `run:metrics-appended`, `run:before-summary`. Unset (always, outside tests), a point costs one lookup.
 */
export const FAULT_POINTS_ENV = 'WRN_TEST_FAULT_POINTS';

let parsed: { spec: string | undefined; pauses: Map<string, number> } | undefined;
const hits = new Map<string, number>();

function pauses(): Map<string, number> {
  const spec = typeof process === 'undefined' ? undefined : process.env[FAULT_POINTS_ENV];
  if (parsed !== undefined && parsed.spec === spec) return parsed.pauses;
  const map = new Map<string, number>();
  for (const item of (spec ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    const at = item.lastIndexOf('=');
    const ms = Number(at > 0 ? item.slice(at + 1) : '1000');
    map.set(at > 0 ? item.slice(0, at) : item, Number.isFinite(ms) && ms >= 0 ? ms : 1000);
  }
  parsed = { spec, pauses: map };
  return map;
}

/** Pauses at `name` when the test environment asks for it; a no-op otherwise. */
export async function faultPoint(name: string): Promise<void> {
  const map = pauses();
  if (map.size === 0) return;
  const hit = (hits.get(name) ?? 0) + 1;
  hits.set(name, hit);
  const generic = name.replace(/^epoch-\d+:/, 'epoch-K:');
  const ms = map.get(`${name}@${hit}`) ?? map.get(`${generic}@${hit}`) ?? map.get(name) ?? map.get(generic) ?? map.get('*');
  if (ms === undefined) return;
  writeSync(2, `wrn-fault-point ${name}\n`);
  await new Promise((resolve) => setTimeout(resolve, ms));
}
