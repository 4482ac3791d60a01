// Tracing is off (no SDK, no exporter, no cost) unless the standard OTEL_* variables ask for it.
import t from 'tap';
import { activeTraceIds, traceHeaders, tracingEnabled, withSpan } from './tracing.ts';
import { startTracing, tracingRequested } from './tracing-sdk.ts';

t.test('without an OTLP endpoint no SDK starts and no exporter exists', async (t) => {
  const saved = { ...process.env };
  t.teardown(() => {
    process.env = saved;
  });
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
  const handle = await startTracing('portcullis-test', '0.0.0');
  t.equal(handle.enabled, false);
  t.equal(tracingEnabled(), false);
  t.same(traceHeaders(), {}, 'nothing injected into messages');
  t.same(activeTraceIds(), {}, 'no ids on log lines');
  t.equal(await withSpan('x.y', {}, async (span) => span), undefined, 'withSpan runs the function without creating a span');
  t.notOk(process.env.OTEL_SERVICE_NAME, 'the environment is left alone');
});

t.test('which configurations ask for tracing', async (t) => {
  t.equal(tracingRequested({}), false);
  t.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), true);
  t.equal(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }), true);
  t.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' }), false);
  t.equal(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }), false);
});
