// Durability of the IMP acceptor: `mailbag start` is SIGKILLed right after it answered
// a bag with ACKNOWLEDGE yes (and while it holds a second bag it has not answered);
// after a restart every message acknowledged yes is delivered exactly once to its
// Maildir, and none of the unanswered ones more than once.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { deliverCommand, encodeBag, encodeShippingUnit, proplist, readReply, textElement, type ImpMessage } from '../src/imp/index.js';
import { spawnGateway, type GatewayProcess } from './helpers/gateway-process.js';
import { impClient } from './helpers/imp-client.js';
import { tempDir, testConfigInput, waitFor } from './helpers/gateway.js';

const ORIGIN = 167772404;

function deliver(tn: number, marker: string): ImpMessage {
  return {
    tid: { tn, ihn: ORIGIN },
    command: deliverCommand({ mailbox: proplist({ HOST: 'example.test', USER: `user${tn % 3}` }), stamp: [ORIGIN] }),
    document: {
      header: proplist({ FROM: 'sender@origin.test', SUBJECT: `durability ${marker}` }),
      body: { type: 'list', items: [textElement(`marker ${marker}\r\n` + 'filler line of text\r\n'.repeat(200))] },
    },
  };
}

function markersIn(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true, encoding: 'utf8' })
    .filter((rel) => /\/(new|cur)\/[^/]+$/.test(rel))
    .map((rel) => join(root, rel))
    .filter((p) => statSync(p, { throwIfNoEntry: false })?.isFile() === true)
    .flatMap((p) => [...readFileSync(p, 'utf8').matchAll(/^marker (\S+)\r$/gm)].map((m) => m[1]!));
}

async function impPort(gw: GatewayProcess): Promise<number> {
  const line = await waitFor(() => gw.logs.find((l) => l.msg === 'listening' && typeof l.imp === 'string'), 15000, 'the listening line');
  const imp = line.imp as string;
  return Number(imp.slice(imp.lastIndexOf(':') + 1));
}

t.test('SIGKILL after ACKNOWLEDGE yes: delivered exactly once after the restart', { timeout: 90_000 }, async (t) => {
  const { dir, cleanup } = tempDir('imp-durability');
  t.teardown(cleanup);
  const mailboxes = join(dir, 'mailboxes');
  const config = join(dir, 'mailbag.yaml');
  const input = testConfigInput(dir, {
    imp: { ihn: 167772359, listen: { host: '127.0.0.1', port: 0 } },
    routes: [{ domain: 'example.test', nexthop: `maildir:${mailboxes}` }],
    log: { level: 'info' },
  });
  writeFileSync(config, stringify(input));

  let gw = await spawnGateway(config, { keepLogs: true });
  t.teardown(() => gw.kill());
  const c = await impClient(await impPort(gw));
  const acked = Array.from({ length: 30 }, (_, i) => `a${i}`);
  const unanswered = Array.from({ length: 30 }, (_, i) => `b${i}`);
  await c.send(encodeShippingUnit(encodeBag(acked.map((m, i) => deliver(i, m)))));
  const replies = (await c.replies(acked.length)).map(readReply);
  t.ok(replies.every((r) => r.answer), 'every message of the first bag acknowledged yes');
  // A second bag goes out; the gateway dies the moment the first bag's replies are in.
  c.socket.write(encodeShippingUnit(encodeBag(unanswered.map((m, i) => deliver(100 + i, m)))));
  await gw.kill();
  c.close();

  gw = await spawnGateway(config, { keepLogs: true });
  await waitFor(() => {
    const seen = new Set(markersIn(mailboxes));
    return acked.every((m) => seen.has(m));
  }, 60_000, 'every acknowledged message delivered');
  // Let any unanswered message the store knows be delivered too, then look for doubles.
  await gw.stop();
  const seen = markersIn(mailboxes);
  const count = (m: string) => seen.filter((x) => x === m).length;
  t.same(acked.filter((m) => count(m) !== 1), [], 'each acknowledged message exactly once');
  t.same(unanswered.filter((m) => count(m) > 1), [], 'no unanswered message twice');
  t.equal(seen.filter((m) => !acked.includes(m) && !unanswered.includes(m)).length, 0);
});
