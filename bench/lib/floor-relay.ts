// The library floor for bench/smtp-relay: the same two libraries mailbag relays with
// (smtp-server in, a pooled nodemailer transport out) and nothing else: the message is
// held in memory, no spool, no store, no fsync, 250 before the relay. It is not a
// gateway anyone should run; it shows what the SMTP stack itself costs on this machine,
// so mailbag's figures can be split into "stack" and "durability + queue".
//
//   node --import=tsx bench/lib/floor-relay.ts LISTEN_PORT NEXT_HOP_PORT
import { SMTPServer } from 'smtp-server';
import nodemailer from 'nodemailer';

const [listenPort, hopPort] = process.argv.slice(2).map(Number);
if (!listenPort || !hopPort) {
  process.stderr.write('usage: floor-relay.ts LISTEN_PORT NEXT_HOP_PORT\n');
  process.exit(2);
}

const next = nodemailer.createTransport({
  host: '127.0.0.1',
  port: hopPort,
  secure: false,
  ignoreTLS: true,
  pool: true,
  maxConnections: 20,
  maxMessages: Infinity,
});

const server = new SMTPServer({
  disableReverseLookup: true,
  logger: false,
  authOptional: true,
  hideSTARTTLS: true,
  earlyTalkerDelay: 0,
  maxClients: 1000,
  onData(stream, session, callback) {
    // The session is reset once the callback runs: take the envelope first.
    const envelope = {
      from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
      to: session.envelope.rcptTo.map((r) => r.address),
    };
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      callback(null, 'Ok: relayed from memory');
      next.sendMail({ envelope, raw: Buffer.concat(chunks) }).catch((err: Error) => process.stderr.write(`relay: ${err.message}\n`));
    });
  },
});
server.listen(listenPort, '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => {
  next.close();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
