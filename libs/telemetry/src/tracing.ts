// Tracing helpers over the OpenTelemetry API: spans, W3C context in message headers, ids for logs.
// Without a started SDK (no OTLP endpoint configured) every helper is a pass-through with no allocation.
import { type Context, type Link, type Span, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';

let enabled = false;

/** Called once by the SDK starter; until then tracing costs nothing. */
export function markTracingEnabled(on: boolean): void {
  enabled = on;
}

/** True when an OTLP exporter is running in this process. */
export function tracingEnabled(): boolean {
  return enabled;
}

export const SpanKinds = {
  server: SpanKind.SERVER,
  client: SpanKind.CLIENT,
  producer: SpanKind.PRODUCER,
  consumer: SpanKind.CONSUMER,
  internal: SpanKind.INTERNAL,
} as const;

/** Options of {@link withSpan}. */
export interface SpanOptions {
  kind?: SpanKind;
  attributes?: Record<string, string | number | boolean>;
  /** Parent context (e.g. extracted from a message); default: the active one. */
  parent?: Context;
  /** Links for fan-out work that has no single parent. */
  links?: Link[];
}

const tracer = () => trace.getTracer('portcullis');

/**
 * Runs `fn` inside a span named `service.operation`; errors mark the span and propagate. Never put a
 * token, cookie or secret in `attributes`.
 */
export async function withSpan<T>(name: string, opts: SpanOptions, fn: (span: Span | undefined) => Promise<T> | T): Promise<T> {
  if (!enabled) return fn(undefined);
  const parent = opts.parent ?? context.active();
  const span = tracer().startSpan(name, { kind: opts.kind ?? SpanKind.INTERNAL, attributes: opts.attributes ?? {}, links: opts.links ?? [] }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message ?? String(err) });
    throw err;
  } finally {
    span.end();
  }
}

/** W3C trace context (`traceparent`, `tracestate`) of the active span, for message headers. Empty when off. */
export function traceHeaders(): Record<string, string> {
  const carrier: Record<string, string> = {};
  if (enabled) propagation.inject(context.active(), carrier);
  return carrier;
}

/** The context a message's headers carry (`get` reads one header; '' or undefined = absent). */
export function contextFromHeaders(get: (name: string) => string | undefined): Context | undefined {
  if (!enabled) return undefined;
  const carrier: Record<string, string> = {};
  for (const k of propagation.fields()) {
    const v = get(k);
    if (v) carrier[k] = v;
  }
  return propagation.extract(context.active(), carrier);
}

/** A span link to the span a context carries, for fan-out consumers. */
export function linkTo(ctx: Context | undefined): Link[] {
  const sc = ctx ? trace.getSpanContext(ctx) : undefined;
  return sc ? [{ context: sc }] : [];
}

/** `trace_id` / `span_id` of the active span, for log lines; empty when tracing is off or no span is active. */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  if (!enabled) return {};
  const sc = trace.getActiveSpan()?.spanContext();
  return sc ? { trace_id: sc.traceId, span_id: sc.spanId } : {};
}
