// Tests for a target's verdict from its rounds: met, missed, and on the line when the rounds fall on both sides.
import t from 'tap';
import { PERCENTILES, type PercentileKey, type RunResult, atLeast, ratio, ratioWithRounds, roundsStraddle, summarize } from './load.ts';
import { verdict } from './report.ts';

function run(rps: number): RunResult {
  const latency = Object.fromEntries(PERCENTILES.map((k) => [k, 1])) as Record<PercentileKey, number>;
  return { rps, latency, requests: rps * 10, errors: 0, cpuUs: Number.NaN };
}

const target = (rps: number[]) => summarize('subject', rps.map(run));

t.test('rounds on both sides of the line are on the line, whichever way the mean went', async (t) => {
  const nginx = target([10_000, 10_000]);
  // Rounds 0.62 and 0.82: mean 0.72, met, but one round missed.
  const edge = target([6_200, 8_200]);
  t.equal(ratioWithRounds(edge, nginx, (n) => n.toFixed(2)), '0.72 (rounds 0.62–0.82)');
  t.ok(ratio(edge, nginx) >= 0.7);
  t.equal(roundsStraddle(edge, nginx, atLeast(0.7)), true);
  t.equal(verdict({ what: 'x', target: '≥ 0.70', measured: '', met: true, onTheLine: true }), 'yes, on the line (its rounds fell on both sides)');
  // Rounds 0.55 and 0.72: mean 0.635, missed, yet a round met it.
  const below = target([5_500, 7_200]);
  t.equal(roundsStraddle(below, nginx, atLeast(0.7)), true);
  t.equal(verdict({ what: 'x', target: '≥ 0.70', measured: '', met: false, onTheLine: true }), '**no**, on the line (its rounds fell on both sides)');
});

t.test('rounds all on one side are a plain verdict', async (t) => {
  const nginx = target([10_000, 10_000]);
  t.equal(roundsStraddle(target([7_300, 7_900]), nginx, atLeast(0.7)), false, 'every round met it');
  t.equal(roundsStraddle(target([5_500, 5_800]), nginx, atLeast(0.7)), false, 'every round missed it');
  t.equal(roundsStraddle(target([7_000]), nginx, atLeast(0.7)), false, 'one round cannot straddle');
  t.equal(verdict({ what: 'x', target: '≥ 0.70', measured: '', met: true }), 'yes');
  t.equal(verdict({ what: 'x', target: '≥ 0.70', measured: '', met: false }), '**no**');
  // The contended note still follows.
  t.equal(
    verdict({ what: 'x', target: '≥ 0.70', measured: '', met: true, onTheLine: true, contended: 'a busy host' }),
    'yes, on the line (its rounds fell on both sides), but **contended** (a busy host)',
  );
});

t.test('an "at most 5 % over the baseline" target is a ratio of at least 0.95 per round', async (t) => {
  const relay = target([10_000, 10_000]);
  // Auth work 7.4 % and -2 % in the two rounds.
  t.equal(roundsStraddle(target([9_260, 10_200]), relay, atLeast(0.95)), true);
  t.equal(roundsStraddle(target([9_600, 10_200]), relay, atLeast(0.95)), false);
});
