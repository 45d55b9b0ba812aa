/**
 * A parked workflow's reason in plain words, for the operations console: the system in business
 * terms (CRM, ERP, support desk), what happened and after how many attempts, e.g. "The CRM did
 * not answer (6 attempts): connection refused." instead of the raw error. Plain JavaScript (an
 * ES module the page loads as it is, no build step); plain-words.d.ts types it for the tests.
 */

/** Names the error texts use for a system, and the system's name in business terms. */
const SYSTEMS = [
  { pattern: /\b(crm|salesforce)\b/i, name: 'the CRM' },
  { pattern: /\b(erp|business central|dynamics)\b/i, name: 'the ERP' },
  { pattern: /\b(support|desk|zendesk)\b/i, name: 'the support desk' },
  { pattern: /\bprocesses\b/i, name: 'the process service' },
  { pattern: /\bgateway\b/i, name: 'the gateway' },
];

/** Step names start with their system: crm-activity, erp-return-order, desk-case-note. */
const STEP_PREFIXES = { crm: 'the CRM', erp: 'the ERP', desk: 'the support desk', support: 'the support desk' };

/** What happened, by error code or by the words of the error, in order of precedence. */
const WHAT = [
  { test: /\bREFUSED_BY_SYSTEM\b/, kind: 'refused', words: 'refused the change' },
  { test: /\bBAD_USER_INPUT\b/, kind: 'invalid', words: 'rejected the data it was sent as not valid' },
  { test: /\b(FORBIDDEN|UNAUTHENTICATED)\b/, kind: 'credentials', words: "did not accept Concord's credentials" },
  { test: /\b(TIMEOUT|timed out|ETIMEDOUT)\b/i, kind: 'timeout', words: 'did not answer in time' },
  {
    test: /\b(SYSTEM_UNAVAILABLE|UNREACHABLE|did not answer|connection refused|ECONNREFUSED|ECONNRESET|unavailable)\b/i,
    kind: 'unavailable',
    words: 'did not answer',
  },
  { test: /\b(BUSY|rate limit|too many requests|HTTP_429)\b/i, kind: 'busy', words: 'was too busy to take the request' },
];

/** Low-level causes worth keeping after the sentence. */
const CAUSES = [
  /connection refused/i,
  /connection reset/i,
  /timed out/i,
  /no route to host/i,
  /name not resolved|ENOTFOUND/i,
  /HTTP \d{3}/,
];

const CODES =
  /\b(SYSTEM_UNAVAILABLE|REFUSED_BY_SYSTEM|BAD_USER_INPUT|FORBIDDEN|UNAUTHENTICATED|TIMEOUT|UNREACHABLE|BUSY|INTERNAL_SERVER_ERROR|ERROR)\b/g;

function capitalized(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The system a workflow's error concerns: named in the error, else by the step's prefix. */
export function systemOf(text, step) {
  const named = /\bThe (\w+) system\b/i.exec(text ?? '');
  if (named) {
    const system = SYSTEMS.find((candidate) => candidate.pattern.test(named[1]));
    if (system) return system.name;
  }
  const prefix = /^([a-z]+)-/.exec(step ?? '')?.[1];
  if (prefix && STEP_PREFIXES[prefix]) return STEP_PREFIXES[prefix];
  const mentioned = SYSTEMS.find((candidate) => candidate.pattern.test(text ?? ''));
  return mentioned ? mentioned.name : null;
}

/**
 * The reason a workflow is parked, in plain words.
 * @param {{ currentStep?: string | null, parkedReason?: string | null, lastError?: string | null, attempts?: number | null }} workflow
 * @returns {{ text: string, system: string | null, kind: string }}
 */
export function plainReason(workflow) {
  const reason = workflow.parkedReason ?? '';
  const error = workflow.lastError ?? '';
  const both = `${error} ${reason}`;
  const step = workflow.currentStep ?? /^([\w.-]+) (?:failed|was refused|could not be undone)/.exec(reason)?.[1] ?? null;
  const system = systemOf(both, step);
  const counted = /failed (\d+) times/.exec(reason);
  const attempts = counted ? Number(counted[1]) : (workflow.attempts ?? 0);
  const attemptsText = attempts > 1 ? ` (${attempts} attempts)` : attempts === 1 ? ' (1 attempt)' : '';
  const subject = system ? capitalized(system) : step ? `The step ${step}` : 'The workflow';
  if (/could not be undone/.test(reason)) {
    return {
      text: `Undoing ${step ? `the step ${step}` : 'a step'} failed${system ? ` in ${system}` : ''}${attemptsText}: ${detailOf(error || reason)}.`,
      system,
      kind: 'undo-failed',
    };
  }
  if (/nothing to undo/i.test(reason)) {
    return {
      text: `Nothing done so far can be undone; ${lowerFirst(plainReason({ ...workflow, parkedReason: null }).text)}`,
      system,
      kind: 'nothing-to-undo',
    };
  }
  const what = WHAT.find((candidate) => candidate.test.test(both));
  if (!what) {
    const detail = detailOf(error || reason);
    return { text: `${subject} failed${attemptsText}${detail ? `: ${detail}` : ''}.`, system, kind: 'failed' };
  }
  const cause = CAUSES.map((pattern) => pattern.exec(both)?.[0]).find(Boolean);
  // A refusal or invalid data: the system's own message says what to fix.
  const message =
    what.kind === 'refused' || what.kind === 'invalid' ? detailOf(error || reason) : cause && !what.words.includes(cause) ? cause : '';
  return { text: `${subject} ${what.words}${attemptsText}${message ? `: ${message}` : ''}.`, system, kind: what.kind };
}

function lowerFirst(text) {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** The last, human part of a raw error: after the step's name, the codes taken out, trimmed. */
function detailOf(text) {
  const last = String(text).split(/;\s*/)[0] ?? '';
  // The prefixes the engine and the steps put before the message ("crm-activity failed 4 times: logActivity: …").
  let rest = last;
  while (/^[\w.-]+(?: [\w.-]+){0,3}:\s/.test(rest)) rest = rest.replace(/^[^:]*:\s*/, '');
  const afterCode = rest.replace(CODES, '').replace(/\s+/g, ' ').trim();
  const detail = afterCode.replace(/[.\s]+$/, '');
  return detail.length > 160 ? `${detail.slice(0, 157)}…` : detail;
}
