// A minimal OTLP/HTTP trace receiver for tests: accepts http/protobuf and http/json exports and keeps the spans.
import { type IncomingMessage, createServer } from 'node:http';
import { closeServer, listen } from './http-server.ts';

/** One received span, flattened. Ids are lower-case hex. */
export interface ReceivedSpan {
  service: string;
  /** Resource attributes of the exporting process (service.name, process.pid, …). */
  resource: Record<string, string | number | boolean>;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, string | number | boolean>;
  links: Array<{ traceId: string; spanId: string }>;
}

/** A running receiver; point OTEL_EXPORTER_OTLP_ENDPOINT at `url`. */
export interface OtlpReceiver {
  url: string;
  spans: ReceivedSpan[];
  /** Content types of the export requests received (to check which protocol was used). */
  contentTypes: string[];
  close(): Promise<void>;
}

// ---- protobuf wire format (just what ExportTraceServiceRequest needs) ----------------------------

type Field = { no: number; wire: number; value: bigint | Uint8Array };

function readVarint(buf: Uint8Array, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
  }
}

function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, p1] = readVarint(buf, pos);
    pos = p1;
    const no = Number(tag >> 3n);
    const wire = Number(tag & 7n);
    if (wire === 0) {
      const [v, p2] = readVarint(buf, pos);
      out.push({ no, wire, value: v });
      pos = p2;
    } else if (wire === 2) {
      const [len, p2] = readVarint(buf, pos);
      const end = p2 + Number(len);
      out.push({ no, wire, value: buf.subarray(p2, end) });
      pos = end;
    } else if (wire === 1) {
      out.push({ no, wire, value: buf.subarray(pos, pos + 8) });
      pos += 8;
    } else if (wire === 5) {
      out.push({ no, wire, value: buf.subarray(pos, pos + 4) });
      pos += 4;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
  return out;
}

const text = (v: bigint | Uint8Array) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : '');
const hex = (v: bigint | Uint8Array) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : '');
const sub = (f: Field[], no: number) => f.filter((x) => x.no === no).map((x) => fields(x.value as Uint8Array));

function anyValue(f: Field[]): string | number | boolean {
  for (const x of f) {
    if (x.no === 1) return text(x.value);
    if (x.no === 2) return (x.value as bigint) !== 0n;
    if (x.no === 3) return Number(x.value as bigint);
    if (x.no === 4) return Buffer.from(x.value as Uint8Array).readDoubleLE(0);
  }
  return '';
}

function keyValues(list: Field[][]): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const kv of list) {
    const key = text(kv.find((x) => x.no === 1)?.value ?? new Uint8Array());
    const value = sub(kv, 2)[0];
    out[key] = value ? anyValue(value) : '';
  }
  return out;
}

function spansFromProtobuf(body: Uint8Array): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of sub(fields(body), 1)) {
    const resourceFields = sub(rs, 1)[0] ?? [];
    const resource = keyValues(sub(resourceFields, 1));
    const service = String(resource['service.name'] ?? '');
    for (const ss of sub(rs, 2)) {
      for (const span of sub(ss, 2)) {
        const get = (no: number) => span.find((x) => x.no === no)?.value ?? new Uint8Array();
        out.push({
          service,
          resource,
          traceId: hex(get(1)),
          spanId: hex(get(2)),
          parentSpanId: hex(get(4)),
          name: text(get(5)),
          kind: Number((span.find((x) => x.no === 6)?.value as bigint | undefined) ?? 0n),
          attributes: keyValues(sub(span, 9)),
          links: sub(span, 13).map((l) => ({ traceId: hex(l.find((x) => x.no === 1)?.value ?? new Uint8Array()), spanId: hex(l.find((x) => x.no === 2)?.value ?? new Uint8Array()) })),
        });
      }
    }
  }
  return out;
}

// ---- OTLP/JSON ----------------------------------------------------------------------------------

type JsonAny = { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
type JsonKv = { key: string; value?: JsonAny };

function jsonValue(v: JsonAny | undefined): string | number | boolean {
  if (!v) return '';
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.doubleValue ?? '';
}

/** OTLP/JSON ids are hex strings (the spec); some exporters send base64 — accept both. */
function jsonId(id: string | undefined): string {
  if (!id) return '';
  return /^[0-9a-f]+$/i.test(id) ? id.toLowerCase() : Buffer.from(id, 'base64').toString('hex');
}

function spansFromJson(body: string): ReceivedSpan[] {
  const req = JSON.parse(body) as {
    resourceSpans?: Array<{
      resource?: { attributes?: JsonKv[] };
      scopeSpans?: Array<{
        spans?: Array<{
          traceId?: string;
          spanId?: string;
          parentSpanId?: string;
          name?: string;
          kind?: number;
          attributes?: JsonKv[];
          links?: Array<{ traceId?: string; spanId?: string }>;
        }>;
      }>;
    }>;
  };
  const out: ReceivedSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = Object.fromEntries((rs.resource?.attributes ?? []).map((a) => [a.key, jsonValue(a.value)]));
    const service = String(resource['service.name'] ?? '');
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          service,
          resource,
          traceId: jsonId(s.traceId),
          spanId: jsonId(s.spanId),
          parentSpanId: jsonId(s.parentSpanId),
          name: s.name ?? '',
          kind: s.kind ?? 0,
          attributes: Object.fromEntries((s.attributes ?? []).map((a) => [a.key, jsonValue(a.value)])),
          links: (s.links ?? []).map((l) => ({ traceId: jsonId(l.traceId), spanId: jsonId(l.spanId) })),
        });
      }
    }
  }
  return out;
}

async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** Starts the receiver on a free loopback port (`POST /v1/traces`). */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const server = createServer((req, res) => {
    if (req.method !== 'POST' || !(req.url ?? '').startsWith('/v1/traces')) {
      res.writeHead(404).end();
      return;
    }
    readAll(req).then(
      (body) => {
        const type = String(req.headers['content-type'] ?? '');
        contentTypes.push(type);
        try {
          spans.push(...(type.includes('json') ? spansFromJson(body.toString('utf8')) : spansFromProtobuf(body)));
          res.writeHead(200, { 'content-type': type.includes('json') ? 'application/json' : 'application/x-protobuf' }).end(type.includes('json') ? '{}' : '');
        } catch (err) {
          res.writeHead(400).end(String(err));
        }
      },
      () => res.writeHead(400).end(),
    );
  });
  const port = await listen(server, 0, '127.0.0.1');
  return { url: `http://127.0.0.1:${port}`, spans, contentTypes, close: () => closeServer(server) };
}
