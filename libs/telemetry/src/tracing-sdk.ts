// Starts the OpenTelemetry SDK (OTLP traces) when the standard OTEL_* variables ask for it.
import { register } from 'node:module';
import { markTracingEnabled } from './tracing.ts';

/** Query parameters that carry secrets in OIDC flows; their values are replaced in span attributes. */
const SECRET_QUERY_PARAMS = ['code', 'state', 'session_state', 'id_token_hint', 'logout_token', 'access_token', 'token'];

/**
 * `db.query.text` of a Redis span: the command and how many arguments it had, never the arguments.
 * The instrumentation's default keeps every argument of EVAL/EVALSHA and GET-like commands: the
 * projection script's arguments are a session's access, ID and sealed refresh tokens, and keys name
 * session ids and login-state hashes.
 */
export function redisQueryText(command: string, args: ReadonlyArray<unknown>): string {
  return args.length > 0 ? `${command} [${args.length} arguments]` : command;
}

/** A started SDK, or a no-op. */
export interface TracingHandle {
  enabled: boolean;
  shutdown(): Promise<void>;
}

/** True when OTEL_* configuration asks for traces to be exported. */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.OTEL_SDK_DISABLED === 'true' || env.OTEL_TRACES_EXPORTER === 'none') return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

/**
 * Starts tracing for this process (call before the instrumented modules are imported). Exporter,
 * protocol (`http/protobuf` default, or `http/json`), sampler and endpoint come from the standard
 * OTEL_* variables; `OTEL_SERVICE_NAME` overrides `serviceName`. No endpoint → nothing is created.
 */
export async function startTracing(serviceName: string, version: string): Promise<TracingHandle> {
  if (!tracingRequested()) return { enabled: false, shutdown: async () => {} };
  // ESM modules (ioredis under NodeNext, undici) are only patched through the loader hook.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  process.env.OTEL_SERVICE_NAME ||= serviceName;
  // Metrics and logs go through Prometheus and stdout; only traces are exported over OTLP.
  process.env.OTEL_METRICS_EXPORTER ||= 'none';
  process.env.OTEL_LOGS_EXPORTER ||= 'none';
  const [{ NodeSDK }, { HttpInstrumentation }, { UndiciInstrumentation }, { IORedisInstrumentation }, fastifyOtel, { resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-node'),
      import('@opentelemetry/instrumentation-http'),
      import('@opentelemetry/instrumentation-undici'),
      import('@opentelemetry/instrumentation-ioredis'),
      import('@fastify/otel'),
      import('@opentelemetry/resources'),
    ]);
  const FastifyOtel = (fastifyOtel as unknown as { FastifyOtelInstrumentation: new (o: object) => object }).FastifyOtelInstrumentation;
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ 'service.version': version }),
    instrumentations: [
      new HttpInstrumentation({
        // Login callbacks carry the authorization code and state in the query: never in a span.
        redactedQueryParamsServer: SECRET_QUERY_PARAMS,
        redactedQueryParams: SECRET_QUERY_PARAMS,
        // The metrics and ping listener is scraped constantly; its spans would drown the rest.
        ignoreIncomingRequestHook: (req) => (req.url ?? '').startsWith('/metrics') || (req.url ?? '').includes('/outpost.goauthentik.io/ping'),
      }),
      new UndiciInstrumentation(),
      new IORedisInstrumentation({ requireParentSpan: true, dbStatementSerializer: redisQueryText }),
      new FastifyOtel({
        registerOnInitialization: true,
        // fastify-otel records the raw URL, query included; keep the path only.
        requestHook: (span: { setAttribute(k: string, v: string): void }, request: { url: string }) => span.setAttribute('url.path', request.url.split('?')[0] ?? '/'),
      }),
    ] as never,
  });
  sdk.start();
  markTracingEnabled(true);
  return {
    enabled: true,
    shutdown: async () => {
      markTracingEnabled(false);
      await sdk.shutdown();
    },
  };
}
