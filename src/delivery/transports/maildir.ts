import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { NextHop } from '../../config/schema.js';
import type { DeliveryRequest, DeliveryResult, NextHopTransport, RecipientResult } from './transport.js';

/** Local parts that could escape the mailbox directory or hide in it are refused. */
function mailboxParts(rcpt: string): { domain: string; local: string } | undefined {
  const at = rcpt.lastIndexOf('@');
  if (at <= 0) return undefined;
  const local = rcpt.slice(0, at).toLowerCase();
  const domain = rcpt.slice(at + 1).toLowerCase();
  const safe = (s: string) => s.length > 0 && s.length <= 255 && !/[/\\\0]/.test(s) && !s.startsWith('.');
  return safe(local) && safe(domain) ? { domain, local } : undefined;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.F_OK);
    return true;
  } catch {
    return false;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/**
 * Maildir next hop: PATH/<domain>/<local>/{tmp,new,cur} with the tmp -> new rename.
 *
 * Exactly once across crashes: the file name is deterministic per (qid, recipient), and
 * its intent is recorded in the store after the tmp file is complete and fsync'd but
 * before the rename. On a retry, the name found in new/ or cur/ is already delivered;
 * a recorded name found only in tmp/ gets the rename redone; a recorded name found
 * nowhere was delivered and since removed by the reader, so it is not delivered again.
 */
export class MaildirTransport implements NextHopTransport {
  readonly kind = 'maildir' as const;

  constructor(private readonly hostname: string) {}

  static fileName(req: Pick<DeliveryRequest, 'qid' | 'receivedAt'>, rcpt: string, hostname: string): string {
    const tag = createHash('sha256').update(rcpt.toLowerCase()).digest('hex').slice(0, 12);
    const host = hostname.replace(/[/:]/g, '_');
    return `${Math.floor(req.receivedAt / 1000)}.M${req.qid}R${tag}.${host}`;
  }

  async deliver(hop: NextHop, req: DeliveryRequest): Promise<DeliveryResult> {
    if (hop.kind !== 'maildir') throw new TypeError(`MaildirTransport cannot deliver to ${hop.url}`);
    const root = resolve(hop.path);
    const recipients: RecipientResult[] = [];
    for (const rcpt of req.recipients) recipients.push(await this.deliverOne(root, rcpt, req));
    const ok = recipients.filter((r) => r.outcome === 'delivered').length;
    return { reply: `250 2.0.0 ${ok}/${recipients.length} delivered to ${hop.url}`, recipients };
  }

  private async deliverOne(root: string, rcpt: string, req: DeliveryRequest): Promise<RecipientResult> {
    const parts = mailboxParts(rcpt);
    if (!parts) return { rcpt, outcome: 'failed', reply: '550 5.1.3 mailbox name not allowed in a Maildir' };
    const box = join(root, parts.domain, parts.local);
    const name = MaildirTransport.fileName(req, rcpt, this.hostname);
    const tmp = join(box, 'tmp', name);
    const target = join(box, 'new', name);
    try {
      // The name is deterministic: if it is in new/ or cur/, this recipient has it.
      if (await this.landed(box, name)) return { rcpt, outcome: 'delivered', reply: `250 2.0.0 already delivered as ${name}`, deliveredAs: name };
      if (req.intendedName(rcpt) === name) {
        if (!(await exists(tmp))) {
          return { rcpt, outcome: 'delivered', reply: `250 2.0.0 delivered as ${name} (since removed from the mailbox)`, deliveredAs: name };
        }
        await rename(tmp, target);
        await fsyncDir(join(box, 'new'));
        return { rcpt, outcome: 'delivered', reply: `250 2.0.0 delivered as ${name}`, deliveredAs: name };
      }
      for (const sub of ['tmp', 'new', 'cur']) await mkdir(join(box, sub), { recursive: true });
      const fh = await open(tmp, 'w', 0o600);
      try {
        const message = req.openMessage();
        try {
          for await (const chunk of message as AsyncIterable<Buffer>) await fh.write(chunk);
        } finally {
          message.destroy();
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      req.recordIntent(rcpt, name);
      await rename(tmp, target);
      await fsyncDir(join(box, 'new'));
      return { rcpt, outcome: 'delivered', reply: `250 2.0.0 delivered as ${name}`, deliveredAs: name };
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      // Disk full, permissions, quota: an operator can fix these, so retry.
      return { rcpt, outcome: 'deferred', reply: `451 4.3.0 maildir ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ') };
    }
  }

  /** new/NAME, or cur/NAME with the reader's `:2,flags` suffix. */
  private async landed(box: string, name: string): Promise<boolean> {
    if (await exists(join(box, 'new', name))) return true;
    try {
      return (await readdir(join(box, 'cur'))).some((f) => f === name || f.startsWith(`${name}:`));
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {}
}
