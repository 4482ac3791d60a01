// The only file access of this package besides the config file: `*_file` secrets and readability checks.
import { accessSync, constants, readFileSync, statSync } from 'node:fs';

/** Reads a secret file; the value is its content with trailing newlines removed. */
export function readSecretFile(path: string): { ok: true; text: string } | { ok: false; message: string } {
  try {
    // Secrets mounted by Docker/Kubernetes or written with `echo` end in a newline that is not part of the value.
    return { ok: true, text: readFileSync(path, 'utf8').replace(/[\r\n]+$/, '') };
  } catch (err) {
    return { ok: false, message: errorMessage(err) };
  }
}

/** Returns why `path` is not a readable regular file, or undefined when it is. */
export function whyUnreadable(path: string): string | undefined {
  try {
    if (!statSync(path).isFile()) return 'it is not a regular file';
    accessSync(path, constants.R_OK);
    return undefined;
  } catch (err) {
    return errorMessage(err);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
