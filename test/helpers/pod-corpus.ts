import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const DIR = new URL('../fixtures/pod/', import.meta.url);

export function podFixture(name: string): string {
  return readFileSync(new URL(name, DIR), 'utf8');
}

export function podFixturePath(name: string): string {
  return new URL(name, DIR).pathname;
}

/** Every public sample event in test/fixtures/pod (see its README), each as its raw payload. */
export function corpusEvents(): { source: string; payload: string }[] {
  const out: { source: string; payload: string }[] = [];
  for (const f of ['elastic-test-mail.jsonl', 'elastic-test-message.jsonl']) {
    podFixture(f)
      .split('\n')
      .forEach((line, i) => {
        if (line.trim()) out.push({ source: `${f}:${i + 1}`, payload: line });
      });
  }
  out.push({ source: 'sumologic-message-log.json', payload: podFixture('sumologic-message-log.json') });
  const dd = parse(podFixture('datadog-proofpoint-on-demand_tests.yaml')) as { tests: { sample: string }[] };
  out.push({ source: 'datadog tests[0].sample', payload: dd.tests[0]!.sample });
  return out;
}
