// One thing wrong with the configuration, and how to print it on one line.

/** A configuration problem (or warning): where it is, what is wrong, what the operator should do. */
export interface ConfigProblem {
  /** Where: `providers[0].client_id`, `outpost.listen.http`, `providers[1].skip_path_regex (line 2)`, `env PORTCULLIS_FOO__BAR`, `file /etc/x.yaml (line 3, column 5)`. */
  path: string;
  /** What is wrong, in one sentence. */
  reason: string;
  /** Exactly what to do about it. */
  fix: string;
  /** Set on the warning for a certificate that is expired or not valid yet (see checkServerCertificates). */
  certificateNotValidNow?: true;
}

/** Where checks report: problems make the config invalid, warnings are shown and the config still loads. */
export interface CheckSink {
  problems: ConfigProblem[];
  warnings: ConfigProblem[];
}

/** Formats a problem as one line: `<path>: <reason> — <fix>` (newlines in the parts become spaces). */
export function formatProblem(p: ConfigProblem): string {
  return `${oneLine(p.path)}: ${oneLine(p.reason)} — ${oneLine(p.fix)}`;
}

function oneLine(s: string): string {
  // A problem may quote user input (a regex, an env value); the CLI prints one problem per line.
  return s.replace(/\s*[\r\n]+\s*/g, ' ');
}
