import { randomInt } from 'node:crypto';

export const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const SF_SUFFIX = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ012345';

/** Salesforce's 3-character suffix that makes a 15-character Id case-insensitive. */
export function salesforceSuffix(id15: string): string {
  let suffix = '';
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const code = id15.charCodeAt(chunk * 5 + i);
      if (code >= 65 && code <= 90) bits |= 1 << i;
    }
    suffix += SF_SUFFIX.charAt(bits);
  }
  return suffix;
}

/** A new 18-character Salesforce-style Id with the object's key prefix (Task: 00T). */
export function newSalesforceId(prefix: string): string {
  let id15 = prefix;
  while (id15.length < 15) id15 += BASE62.charAt(randomInt(BASE62.length));
  return id15 + salesforceSuffix(id15);
}
