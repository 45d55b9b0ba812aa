/** Types of plain-words.js (served to the console's page as it is). */
export interface ParkedWorkflowLike {
  currentStep?: string | null;
  parkedReason?: string | null;
  lastError?: string | null;
  attempts?: number | null;
}

export interface PlainReason {
  /** One sentence naming the system in business terms, what happened and how many attempts. */
  text: string;
  /** 'the CRM', 'the ERP', 'the support desk', …; null when no system is named. */
  system: string | null;
  /** unavailable, timeout, refused, invalid, credentials, busy, undo-failed, nothing-to-undo or failed. */
  kind: string;
}

export function plainReason(workflow: ParkedWorkflowLike): PlainReason;
export function systemOf(text: string | null | undefined, step: string | null | undefined): string | null;
