// Minimal typed view of better-sqlite3 (the package ships no types and @types/better-sqlite3 is not
// a dependency). Only the calls the store uses are declared.
import { createRequire } from 'node:module';

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

export interface Statement {
  run(...params: unknown[]): RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export interface Database {
  prepare(sql: string): Statement;
  exec(sql: string): void;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  close(): void;
  readonly open: boolean;
  readonly inTransaction: boolean;
}

type DatabaseCtor = new (path: string, options?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => Database;

const require = createRequire(import.meta.url);
let ctor: DatabaseCtor | undefined;

/** Opens (creating if needed) an SQLite database file. */
export function openDatabase(path: string, options?: { readonly?: boolean; fileMustExist?: boolean }): Database {
  ctor ??= require('better-sqlite3') as DatabaseCtor;
  return new ctor(path, { ...options, timeout: 10_000 });
}
