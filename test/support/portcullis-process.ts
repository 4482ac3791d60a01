// Spawns the `portcullis` command as a real process for end-to-end tests, capturing what it prints and killing it at teardown.
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Test } from 'tap';

export const ROOT = join(import.meta.dirname, '..', '..');
/** The installed bin (node_modules/.bin), as an operator runs it. */
export const BIN = join(ROOT, 'node_modules', '.bin', 'portcullis');

/** A spawned `portcullis`: `out()` is everything it printed so far, stdout and stderr interleaved. */
export interface PortcullisProcess {
  child: ChildProcess;
  out(): string;
}

/** Runs `portcullis <args>` from the repo root; SIGKILLed at teardown if it is still running. */
export function spawnPortcullis(t: Test, args: string[]): PortcullisProcess {
  const child = spawn(BIN, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (d: Buffer) => {
    out += d.toString();
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return { child, out: () => out };
}
