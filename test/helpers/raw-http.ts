// Raw HTTP over loopback TCP, for tests that must send exactly these bytes (a request a
// client library would not send, an upgrade timed against the server's own events).
import { connect } from 'node:net';

/** Sends exactly these request bytes; resolves with the response head (status line and headers). */
export function rawRequest(port: number, head: string): Promise<{ status: number; statusLine: string; headers: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      const end = buf.indexOf('\r\n\r\n');
      if (end !== -1) {
        s.destroy();
        const statusLine = buf.slice(0, buf.indexOf('\r\n'));
        resolve({ status: Number(statusLine.split(' ')[1]), statusLine, headers: buf.slice(0, end) });
      }
    });
    s.on('error', reject);
    s.on('close', () => reject(new Error(`closed without a response: ${JSON.stringify(buf)}`)));
    s.write(head);
  });
}
