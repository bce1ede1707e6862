import { decodeBag, decodeElement, encodeBag, deliverCommand, proplist, textElement, type ImpMessage } from './src/imp/index.js';
const small: ImpMessage[] = []; const js: unknown[] = [];
for (let i = 0; i < 1000; i++) {
  const body = `Hello user${i},\r\n\r\n the meeting agenda for thursday please review attached notes and reply before noon regards team the meeting agenda for thursday please review.\r\n\r\n-- \r\nteam\r\n`;
  const header = { DATE: '2026-11-25-09:00:00,000+00:00', FROM: 'Sender <s@example.test>', TO: `user${i}@example.test`, SUBJECT: 'the meeting agenda for thursday' + i };
  small.push({ tid: { tn: i + 1, ihn: 167772404 }, command: deliverCommand({ mailbox: proplist({ IA: 167772359, HOST: 'mx.example.test', USER: 'u' + i }), stamp: [167772404, 167772246] }),
    document: { header: proplist(header), body: { type: 'list', items: [textElement(body)] } } });
  js.push({ tid: { tn: i + 1, ihn: 167772404 }, command: { mailbox: { IA: 167772359, HOST: 'mx.example.test', USER: 'u' + i }, stamp: [167772404, 167772246], type: 1, operation: 'DELIVER', arguments: [['REGULAR']], errorList: [] }, document: { header, body: [body] } });
}
const bag = encodeBag(small); const json = JSON.stringify(js);
const fns: [string, () => unknown][] = [['decodeBag', () => decodeBag(bag)], ['decodeElement', () => decodeElement(bag)], ['JSON.parse', () => JSON.parse(json)]];
const best = fns.map(() => 1e9);
for (let r = 0; r < 60; r++) fns.forEach(([, fn], i) => { const s = performance.now(); for (let k = 0; k < 5; k++) fn(); best[i] = Math.min(best[i]!, (performance.now() - s) / 5); });
fns.forEach(([n], i) => console.log(n, best[i]!.toFixed(2)));
