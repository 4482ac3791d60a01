// The HTML page the demo upstream shows: the request it received, X-authentik-* headers highlighted.
import { escapeHtml } from './html-escape.ts';

/** What the upstream echoes about a request (also the JSON body it returns). */
export interface EchoedRequest {
  name: string;
  method: string;
  /** The raw request target as received. */
  url: string;
  /** Lower-case names, raw values; a header received more than once is an array. */
  headers: Record<string, string | string[]>;
  body: string;
}

/** Renders an echoed request as a small readable page. */
export function renderUpstreamPage(echo: EchoedRequest): string {
  const rows = Object.entries(echo.headers)
    .sort(([a], [b]) => Number(isAuthentik(b)) - Number(isAuthentik(a)) || a.localeCompare(b))
    .flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((v) => [name, v] as const))
    .map(([name, value]) => {
      const cls = isAuthentik(name) ? ' class="ak"' : '';
      return `<tr${cls}><th>${escapeHtml(name)}</th><td>${escapeHtml(value)}</td></tr>`;
    })
    .join('\n');
  const body = echo.body ? `<h2>Body</h2>\n<pre>${escapeHtml(echo.body)}</pre>` : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(echo.name)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:left;vertical-align:top;word-break:break-all}
th{width:16rem;font-weight:600}tr.ak{background:#fff3c4}tr.ak th{color:#7a4d00}pre{background:#f4f4f4;padding:.6rem;white-space:pre-wrap}</style>
</head>
<body>
<h1>${escapeHtml(echo.name)}</h1>
<p><code>${escapeHtml(echo.method)} ${escapeHtml(echo.url)}</code></p>
<h2>Headers received</h2>
<p>Rows highlighted in yellow are the <code>X-authentik-*</code> identity headers added by the proxy.</p>
<table>
${rows}
</table>
${body}
</body>
</html>`;
}

function isAuthentik(name: string): boolean {
  return name.toLowerCase().startsWith('x-authentik-');
}
