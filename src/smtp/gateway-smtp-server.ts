// smtp-server with mailbag's reply conventions, the deadlines smtp-server lacks, and one
// place that sees every error reply a client really got (for the log and the metrics).
//
// smtp-server's idle timeout (socketTimeout) is reset by every byte, so a client that
// trickles one byte a second keeps its connection forever. The watch below adds two
// deadlines nothing extends: a command line must arrive whole within `commandTimeout`
// of its first byte, and the message data within `dataTimeout` of the 354. Both rely on
// internals of smtp-server's SMTPConnection and SMTPStream (typed by the package, and the
// package is pinned to one version for its patch, see greeting-delay.ts).
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SMTPServer, type SMTPServerAddress, type SMTPServerOptions, type SMTPServerSession } from 'smtp-server';
import { SMTPConnection, type SMTPConnectionOptions } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import type { MessageParams, RecipientParams } from '../store/queue-store.js';
import { writtenCommand, type WrittenCommand } from './envelope-params.js';
import { splitEnhancedCode } from './reply.js';

/** smtp-server's parsed MAIL FROM / RCPT TO, plus the command as the client wrote it. */
export interface CapturedAddress extends SMTPServerAddress {
  written?: WrittenCommand;
  /** RCPT TO: the parameters mailbag stores for this recipient. */
  stored?: RecipientParams;
  /** MAIL FROM: the parameters mailbag stores with the message (parsed once, at MAIL). */
  mail?: MessageParams;
}

interface AddressParser {
  _parseAddressCommand(name: string, command: Buffer | string): SMTPServerAddress | false;
}

/** An error reply (code >= 400) as the client got it. */
export interface SmtpRefusal {
  session: SMTPServerSession;
  /** The client's address (the session has none yet when a full server refuses it). */
  client: string;
  code: number;
  /** The reply exactly as written (lines joined with CRLF, without the final one). */
  reply: string;
  /** What it answers: `CONNECT` before the greeting, else the command's verb (`?` for junk). */
  command: string;
  /** The address argument of the MAIL or RCPT command it answers. */
  address?: string | undefined;
  /** The reply that ends a DATA transaction (after the 354): the transaction's outcome. */
  endOfData: boolean;
  /** Octets of message data received, for the end-of-DATA reply. */
  dataBytes?: number | undefined;
  /** False when the socket could no longer take it (the client had gone): nobody got it. */
  written: boolean;
}

export interface ListenerDeadlines {
  /** ms from the first byte of a command line to its end; 0 for no limit. */
  commandTimeout: number;
  /** ms from the 354 to the end of the message data; 0 for no limit. */
  dataTimeout: number;
}

/** smtp-server options plus the greeting-delay option the gateway sets (see docs/smtp.md). */
export interface GatewaySmtpOptions extends SMTPServerOptions {
  earlyTalkerDelay?: number;
}

const TOO_LONG = 'Error: Command line too long';
/** RFC 5321 4.5.3.1.4: an over-long command line is a syntax error, not a reason to hang up politely. */
const TOO_LONG_REPLY = '5.5.2 Error: command line too long';

/**
 * Lets an application error whose text leads with an enhanced status code
 * (SmtpReplyError) be sent with that code instead of the library's per-reply-code default
 * (550 would otherwise always say 5.1.1), and answers an over-long command line with
 * 500 5.5.2 rather than a 421.
 */
export class GatewaySmtpServer extends SMTPServer {
  constructor(
    options: GatewaySmtpOptions,
    private readonly deadlines: ListenerDeadlines,
    /** Called for every error reply, with whether the client could still get it. */
    private readonly onRefusal: (r: SmtpRefusal) => void,
  ) {
    super(options);
  }

  /** smtp-server's own connect(), with the connection watched before init() may reply. */
  override connect(socket: Socket | TLSSocket, socketOptions?: SMTPConnectionOptions | null): void {
    const conn = new SMTPConnection(this, socket, socketOptions);
    this.connections.add(conn);
    conn.on('error', (err: Error) => this._onError(err));
    conn.on('connect', (data: unknown) => this.emit('connect', data));
    new ConnectionWatch(conn, this.deadlines, this.onRefusal);
    keepWrittenAddresses(conn as unknown as AddressParser);
    conn.init();
  }
}

/**
 * Keeps the address and parameters as written: smtp-server turns punycode domains into
 * UTF-8 and decodes xtext before the application sees them (see envelope-params.ts).
 */
function keepWrittenAddresses(conn: AddressParser): void {
  const parse = conn._parseAddressCommand.bind(conn);
  conn._parseAddressCommand = (name, command) => {
    const parsed: CapturedAddress | false = parse(name, command);
    if (parsed) {
      const written = writtenCommand(command.toString());
      if (written) parsed.written = written;
    }
    return parsed;
  };
}

/**
 * smtp-server's `continue()` runs the pending continuation (the input pipelined after the
 * message) and only then clears it. When that input holds a whole further transaction,
 * its end of DATA sets the next continuation during the call, and the clearing throws it
 * away: everything the client pipelined after the second message (a third transaction,
 * QUIT) was never read, and the client waited for replies that never came. Cleared
 * before the call instead.
 */
function resumeInOrder(parser: SMTPStream): void {
  parser.continue = () => {
    const next = parser._continueCallback;
    if (typeof next === 'function') {
      parser._continueCallback = false;
      next();
    } else {
      parser._continueCallback = true; // the stream has not ended yet: continue when it does
    }
  };
}

type Send = SMTPConnection['send'];

/** One connection's deadlines and reply observation. */
class ConnectionWatch {
  private command = 'CONNECT';
  private address: string | undefined;
  private inData = false;
  private lineTimer: NodeJS.Timeout | undefined;
  private dataTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly conn: SMTPConnection,
    private readonly deadlines: ListenerDeadlines,
    private readonly onRefusal: (r: SmtpRefusal) => void,
  ) {
    const send = conn.send.bind(conn);
    conn.send = (code, data, context) => this.send(send, code, data, context);
    const close = conn.close.bind(conn);
    conn.close = () => {
      this.stopTimers();
      close();
    };
    const onClose = conn._onClose.bind(conn);
    conn._onClose = () => {
      this.stopTimers();
      onClose();
    };
    const onCommand = conn._onCommand.bind(conn);
    conn._onCommand = (line, callback) => {
      this.noteCommand(line);
      onCommand(line, callback);
    };
    if (conn._parser) this.watchParser(conn._parser);
    // STARTTLS replaces the parser: watch the new one, and what came in clear is void.
    const createParser = conn._createParser.bind(conn);
    conn._createParser = () => {
      this.clearLineTimer();
      const parser = createParser();
      this.watchParser(parser);
      return parser;
    };
  }

  private send(send: Send, code: number, data?: string | string[] | null, context?: string | false): void {
    let closeAfter = false;
    if (code === 421 && data === TOO_LONG) {
      code = 500;
      data = TOO_LONG_REPLY;
      context = false;
      closeAfter = true;
    } else if (code >= 400 && typeof data === 'string' && splitEnhancedCode(data)) {
      // the text already leads with its enhanced status code: do not add another
      context = false;
    }
    const endOfData = this.inData && code !== 354;
    if (code === 354) this.startData();
    else if (endOfData) this.endData();
    if (code < 400) {
      send(code, data, context);
      return;
    }
    const written = this.writable();
    const dataBytes = endOfData && this.conn._parser ? this.conn._parser.dataBytes : undefined;
    send(code, data, context);
    this.onRefusal({
      session: this.conn.session,
      client: this.conn.session.remoteAddress ?? this.conn.remoteAddress,
      code,
      reply: this.conn.session.error ?? String(code),
      command: endOfData ? 'DATA' : this.command,
      address: endOfData ? undefined : this.address,
      endOfData,
      dataBytes,
      written,
    });
    if (closeAfter) this.conn.close();
  }

  /** What smtp-server's send() checks before it writes. */
  private writable(): boolean {
    const s = this.conn._socket;
    return !this.conn._upgrading && !s.destroyed && s.readyState === 'open';
  }

  private noteCommand(line: Buffer): void {
    this.address = undefined;
    if (this.conn._nextHandler) {
      this.command = 'AUTH'; // a continuation line of an AUTH exchange: credentials, never logged
      return;
    }
    const text = line.toString('latin1');
    const verb = /^([A-Za-z]{1,16})(?=[ :]|$)/.exec(text)?.[1];
    this.command = verb ? verb.toUpperCase() : '?';
    if (this.command === 'MAIL' || this.command === 'RCPT') this.address = /<([^>]{0,512})>/.exec(text)?.[1];
  }

  private watchParser(parser: SMTPStream): void {
    resumeInOrder(parser);
    const write = parser._write.bind(parser);
    parser._write = (chunk: Buffer, encoding: BufferEncoding, next: (err?: Error | null) => void) => {
      if (!parser._dataMode) this.sawCommandBytes(chunk);
      write(chunk, encoding, next);
    };
  }

  /** The line deadline runs from the first byte of an unfinished command line. */
  private sawCommandBytes(chunk: Buffer): void {
    if (!this.deadlines.commandTimeout || !chunk.length) return;
    const lf = chunk.lastIndexOf(0x0a);
    if (lf === -1) {
      if (!this.lineTimer) this.startLineTimer();
      return;
    }
    this.clearLineTimer();
    if (lf < chunk.length - 1) this.startLineTimer();
  }

  private startLineTimer(): void {
    this.lineTimer = setTimeout(() => {
      this.lineTimer = undefined;
      if (this.conn._closing || this.conn._closed || this.inData) return;
      this.conn.send(421, '4.4.2 Error: command line timeout exceeded, closing connection', false);
    }, this.deadlines.commandTimeout);
    this.lineTimer.unref();
  }

  private clearLineTimer(): void {
    clearTimeout(this.lineTimer);
    this.lineTimer = undefined;
  }

  /**
   * One DATA timer per connection: each transaction re-arms it (`refresh`) rather than
   * creating a timer of its own, and the end of DATA leaves it be (it finds no DATA in
   * progress when it fires); closing the connection clears it.
   */
  private startData(): void {
    this.inData = true;
    this.clearLineTimer();
    if (!this.deadlines.dataTimeout) return;
    if (this.dataTimer) {
      this.dataTimer.refresh();
      return;
    }
    this.dataTimer = setTimeout(() => {
      const stream = this.conn._dataStream;
      // The client has sent its final dot: the rest is mailbag's own work.
      if (!this.inData || !stream || stream.writableEnded || this.conn._closing || this.conn._closed) return;
      this.conn.send(421, '4.4.2 Error: DATA timeout exceeded, closing connection', false);
    }, this.deadlines.dataTimeout);
    this.dataTimer.unref();
  }

  private endData(): void {
    this.inData = false;
  }

  private stopTimers(): void {
    this.clearLineTimer();
    clearTimeout(this.dataTimer);
    this.dataTimer = undefined;
  }
}
