// Reads the first <form> of an HTML page (action, method, inputs) so the scripted browser can submit it.

/** One named input of a form. */
export interface FormField {
  name: string;
  value: string;
  /** Lower-case input type; "text" when absent. */
  type: string;
}

/** The first form of a page, with its action resolved against the page URL. */
export interface ParsedForm {
  action: string;
  method: 'GET' | 'POST';
  fields: FormField[];
}

/**
 * Parses the first `<form>` in `html`. This is a regular-expression reader for the simple pages our
 * test servers and oidc-provider render, not a general HTML parser. Returns undefined without a form.
 */
export function parseFirstForm(html: string, pageUrl: string): ParsedForm | undefined {
  const match = /<form\b([^>]*)>([\s\S]*?)<\/form\s*>/i.exec(html);
  if (!match) return undefined;
  const attributes = parseAttributes(match[1] ?? '');
  const action = attributes.get('action');
  const fields: FormField[] = [];
  for (const input of (match[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
    const attrs = parseAttributes(input[1] ?? '');
    const name = attrs.get('name');
    if (name === undefined || attrs.has('disabled')) continue;
    fields.push({ name, value: attrs.get('value') ?? '', type: (attrs.get('type') ?? 'text').toLowerCase() });
  }
  return {
    // An empty or missing action submits to the page itself (HTML spec).
    action: new URL(action || pageUrl, pageUrl).href,
    method: (attributes.get('method') ?? 'get').toLowerCase() === 'post' ? 'POST' : 'GET',
    fields,
  };
}

/**
 * True for pages that submit their form from a script as soon as they load: oidc-provider's
 * form_post and logout pages use `document.forms[0].submit()`, which a real browser runs at once.
 */
export function isAutoSubmitPage(html: string): boolean {
  return /<form\b/i.test(html) && /document\.forms\[0\]\.submit\(\)/.test(html);
}

function parseAttributes(source: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const m of source.matchAll(/([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    const name = (m[1] ?? '').toLowerCase();
    if (!attributes.has(name)) attributes.set(name, decodeEntities(m[2] ?? m[3] ?? m[4] ?? ''));
  }
  return attributes;
}

const namedEntities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0' };

function decodeEntities(value: string): string {
  return value.replace(/&(#x[\da-f]+|#\d+|[a-z]+);/gi, (whole, entity: string) => {
    if (entity[0] === '#') {
      const code = entity[1] === 'x' || entity[1] === 'X' ? Number.parseInt(entity.slice(2), 16) : Number(entity.slice(1));
      return Number.isFinite(code) && code <= 0x10ffff ? String.fromCodePoint(code) : whole;
    }
    return namedEntities[entity.toLowerCase()] ?? whole;
  });
}
