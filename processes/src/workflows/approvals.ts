import type { SqlExecutor } from '../../../platform/workflow/sql.ts';

/**
 * What each agent authorized on each case, in the process store (shared by every replica): an
 * approval limit holds for everything one agent authorizes on one case within a window, so a
 * return split into several requests is counted whole.
 */
export class ReturnApprovals {
  private constructor(
    private readonly sql: SqlExecutor,
    private readonly windowMs: number,
  ) {}

  static async open(sql: SqlExecutor, windowMs: number): Promise<ReturnApprovals> {
    await sql.transaction(async (tx) => {
      if (tx.dialect === 'postgres') await tx.query('SELECT pg_advisory_xact_lock(7254032)');
      await tx.run(`CREATE TABLE IF NOT EXISTS return_approvals (
        return_number TEXT PRIMARY KEY,   -- one return order, counted once
        approver TEXT NOT NULL,           -- who authorized it (token subject)
        case_id TEXT NOT NULL,
        cents BIGINT NOT NULL,            -- its value
        authorized_at BIGINT NOT NULL     -- epoch ms
      )`);
      await tx.run('CREATE INDEX IF NOT EXISTS return_approvals_by_approver ON return_approvals (approver, case_id, authorized_at)');
    });
    return new ReturnApprovals(sql, windowMs);
  }

  /** Cents `approver` authorized on `caseId` within the window before `now`. */
  async authorizedWithinWindow(approver: string, caseId: string, now: number): Promise<number> {
    const [row] = await this.sql.query<{ cents: number | string | null }>(
      'SELECT SUM(cents) AS cents FROM return_approvals WHERE approver = ? AND case_id = ? AND authorized_at > ?',
      [approver, caseId, now - this.windowMs],
    );
    return Number(row?.cents ?? 0);
  }

  /** Records an authorized return; the same return order twice is counted once. */
  async record(approval: { returnNumber: string; approver: string; caseId: string; cents: number; at: number }): Promise<void> {
    await this.sql.run(
      `INSERT INTO return_approvals (return_number, approver, case_id, cents, authorized_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (return_number) DO NOTHING`,
      [approval.returnNumber, approval.approver, approval.caseId, approval.cents, approval.at],
    );
  }

  /** Removes approvals older than the window; returns how many. */
  purge(now: number): Promise<number> {
    return this.sql.run('DELETE FROM return_approvals WHERE authorized_at <= ?', [now - this.windowMs]);
  }
}
