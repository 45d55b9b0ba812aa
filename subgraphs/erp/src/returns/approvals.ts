import type { Database } from 'better-sqlite3';

const APPROVAL_TABLES = /* SQL */ `
CREATE TABLE IF NOT EXISTS return_approvals (
  return_number TEXT PRIMARY KEY,   -- one return order, counted once
  approver TEXT NOT NULL,           -- the caller who authorized it (token subject)
  case_id TEXT NOT NULL,
  cents INTEGER NOT NULL,           -- its value
  authorized_at INTEGER NOT NULL    -- epoch ms
);
CREATE INDEX IF NOT EXISTS return_approvals_by_approver ON return_approvals(approver, case_id, authorized_at);
`;

/**
 * What each caller authorized on each case, in the process store: an approval limit holds for
 * everything one agent authorizes on one case within a window, so a return split into several
 * requests is counted whole.
 */
export class ReturnApprovals {
  constructor(
    private readonly db: Database,
    private readonly windowMs: number,
  ) {
    db.exec(APPROVAL_TABLES);
  }

  /** Cents `approver` authorized on `caseId` within the window before `now`. */
  authorizedWithinWindow(approver: string, caseId: string, now: number): number {
    const row = this.db
      .prepare<[string, string, number], { cents: number | null }>(
        'SELECT SUM(cents) AS cents FROM return_approvals WHERE approver = ? AND case_id = ? AND authorized_at > ?',
      )
      .get(approver, caseId, now - this.windowMs);
    return row?.cents ?? 0;
  }

  /** Records an authorized return; the same return order twice is counted once. Runs in the caller's transaction. */
  record(approval: { returnNumber: string; approver: string; caseId: string; cents: number; at: number }): void {
    this.db
      .prepare(
        'INSERT INTO return_approvals (return_number, approver, case_id, cents, authorized_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
      )
      .run(approval.returnNumber, approval.approver, approval.caseId, approval.cents, approval.at);
  }

  /** Removes approvals older than the window; returns how many. */
  purge(now: number): number {
    return this.db.prepare('DELETE FROM return_approvals WHERE authorized_at <= ?').run(now - this.windowMs).changes;
  }
}
