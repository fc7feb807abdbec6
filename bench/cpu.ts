import { readdirSync, readFileSync } from 'node:fs';

/** CPU time (user + system, all threads) a process has used so far, from /proc; NaN elsewhere. */
export function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds per thread name (/proc/PID/task/*), the main thread as 'main'; empty elsewhere. */
export function cpuByThread(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
      const secs = (Number(fields[11]) + Number(fields[12])) / 100;
      // Numbered pools (e.g. a worker per core) count as one.
      const key = name.replace(/[-_ ]?\d+$/, '');
      out.set(key, (out.get(key) ?? 0) + secs);
    }
  } catch {
    // gone, or no /proc
  }
  return out;
}
