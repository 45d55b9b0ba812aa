import { randomUUID } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { exportJWK, generateKeyPair, importJWK, importPKCS8, importSPKI, type CryptoKey, type JWK } from 'jose';

/** Ed25519 for Concord's own tokens: small, fast to verify, one algorithm to pin. */
export const INTERNAL_ALGORITHM = 'EdDSA';

export interface KeyPair {
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

/**
 * The embedded default's keys: one pair plays the token issuer that `npm run token` signs for,
 * one pair signs the gateway's internal tokens to the subgraphs. Real deployments configure
 * an issuer (JWKS URL or public key) and the internal key pair instead.
 */
export interface DevKeys {
  readonly issuer: KeyPair;
  readonly internal: KeyPair;
}

interface StoredKeys {
  issuer: { privateJwk: JWK; publicJwk: JWK };
  internal: { privateJwk: JWK; publicJwk: JWK };
}

export const DEV_KEYS_FILE = 'dev-keys.json';

/**
 * Reads the data folder's development keys, making them at first start. The first process to
 * write wins (a hard link cannot replace an existing file), so services started together agree.
 */
export async function ensureDevKeys(dataDir: string): Promise<DevKeys> {
  const path = join(dataDir, DEV_KEYS_FILE);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    const stored: StoredKeys = { issuer: await newPair(), internal: await newPair() };
    const temp = `${path}.${randomUUID()}.tmp`;
    writeFileSync(temp, JSON.stringify(stored, null, 2), { mode: 0o600 });
    try {
      linkSync(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      rmSync(temp, { force: true });
    }
  }
  const stored = JSON.parse(readFileSync(path, 'utf8')) as StoredKeys;
  return { issuer: await importPair(stored.issuer), internal: await importPair(stored.internal) };
}

async function newPair(): Promise<{ privateJwk: JWK; publicJwk: JWK }> {
  const { privateKey, publicKey } = await generateKeyPair(INTERNAL_ALGORITHM, { extractable: true });
  return { privateJwk: await exportJWK(privateKey), publicJwk: await exportJWK(publicKey) };
}

async function importPair(pair: { privateJwk: JWK; publicJwk: JWK }): Promise<KeyPair> {
  return {
    privateKey: (await importJWK(pair.privateJwk, INTERNAL_ALGORITHM)) as CryptoKey,
    publicKey: (await importJWK(pair.publicJwk, INTERNAL_ALGORITHM)) as CryptoKey,
  };
}

/** A fresh key pair held in memory (tests). */
export async function generateDevKeys(): Promise<DevKeys> {
  const pair = async (): Promise<KeyPair> => generateKeyPair(INTERNAL_ALGORITHM);
  return { issuer: await pair(), internal: await pair() };
}

/** A PEM public key (SPKI) for an algorithm, as configuration gives it. */
export function importPublicPem(pem: string, algorithm: string): Promise<CryptoKey> {
  return importSPKI(pem, algorithm);
}

/** A PEM private key (PKCS #8) for an algorithm, as configuration gives it. */
export function importPrivatePem(pem: string, algorithm: string): Promise<CryptoKey> {
  return importPKCS8(pem, algorithm);
}
