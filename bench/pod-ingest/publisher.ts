// The publisher side of the pod-ingest benchmark, in its own process like a remote
// service: the real PodPublisher serving `count` generated events of one kind from a
// MemoryEventSource. Prints `{"port":N,"token":"..."}`, then on stdin: `go` publishes every
// event at once (the source tells the live session, which sends them at once), `hwm` prints
// its peak RSS and the CPU it used since `go`; end of stdin closes it. The poll interval is
// the production default (1 s): the facts recorder sweeps the store at that pace.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pino } from 'pino';
import { PodPublisher } from '../../src/gateway/pod-publisher.js';
import { loadOrCreateSecret } from '../../src/gateway/pod-secret.js';
import { MemoryEventSource } from '../../src/pod/event-source.js';
import type { PodEventKind } from '../../src/pod/ingest.js';
import { signToken } from '../../src/pod/jwt.js';
import { Store } from '../../src/store/store.js';
import { generateEvents } from './events.js';

const [kind, countText, seedText, startText] = process.argv.slice(2) as [PodEventKind, string, string, string];
const start = Number(startText);
const payloads = generateEvents(kind, Number(countText), Number(seedText), start);
const dir = mkdtempSync(join(tmpdir(), 'mailbag-bench-pod-pub-'));
const secretFile = join(dir, 'secret');
const store = Store.open(join(dir, 'publisher.db'));
const source = new MemoryEventSource();
const publisher = new PodPublisher({
  config: { listen: { host: '127.0.0.1', port: 0 }, secretFile, cid: 'bench', pollInterval: 1000 },
  store,
  identity: { agent: 'bench.example', version: 'bench', localDomains: [] },
  logger: pino({ level: 'silent' }),
  source,
});
await publisher.listen();
const token = signToken(loadOrCreateSecret(secretFile), { cid: 'bench', expiresInSec: 3600 });
process.stdout.write(`${JSON.stringify({ port: publisher.address().port, token })}\n`);

let cpuAtGo = process.cpuUsage();
for await (const line of createInterface({ input: process.stdin })) {
  if (line === 'go') payloads.forEach((payload, i) => source.append({ type: kind, tsMs: start + i, payload }));
  if (line === 'go') cpuAtGo = process.cpuUsage();
  if (line === 'hwm') {
    const cpu = process.cpuUsage(cpuAtGo);
    const hwmKb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
    process.stdout.write(`${JSON.stringify({ hwmKb, cpuUs: cpu.user + cpu.system })}\n`);
  }
}
await publisher.close();
store.close();
rmSync(dir, { recursive: true, force: true });
