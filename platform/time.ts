/** Where services read the time from; tests pass a fixed one. */
export type Clock = () => Date;

export const systemClock: Clock = () => new Date();

/** The calendar date (UTC) of an instant, as YYYY-MM-DD. */
export function isoDate(instant: Date): string {
  return instant.toISOString().slice(0, 10);
}

/** Whole days from `from` to `to` (both YYYY-MM-DD); negative when `to` is earlier. */
export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86_400_000);
}

/** How late a timer may fire before the lateness is taken as this process's own delay. */
const LATE_TIMER_SLACK_MS = 10;
/** How many times a timer is re-armed for a process that kept being held up. */
const MAX_LATE_REARMS = 3;

/**
 * Calls `expire` once `ms` have passed while this process was free to act on them. A busy or
 * descheduled process runs its timers late, ahead of the reads that became due meanwhile: when
 * the timer fires, one turn of the event loop is given to that pending work, and when it fired
 * late the timer is armed again for the time the process lost (up to `ms`, a few times). So a
 * deadline measures the other side (a store, a client), not this process's own stalls, and is
 * still kept within a few times `ms`. clear() cancels it.
 */
export function lagTolerantTimer(ms: number, expire: () => void, options: { unref?: boolean } = {}): { clear(): void } {
  let cleared = false;
  let timer: NodeJS.Timeout | undefined;
  let rearms = 0;
  const arm = (wait: number) => {
    const due = performance.now() + wait;
    timer = setTimeout(() => {
      const late = performance.now() - due;
      setImmediate(() => {
        if (cleared) return;
        if (late > LATE_TIMER_SLACK_MS && rearms < MAX_LATE_REARMS) {
          rearms++;
          arm(Math.min(late, ms));
          return;
        }
        cleared = true;
        expire();
      });
    }, wait);
    if (options.unref) timer.unref();
  };
  arm(ms);
  return {
    clear() {
      cleared = true;
      clearTimeout(timer);
    },
  };
}
