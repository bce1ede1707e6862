// Prometheus series of the IMP acceptor, on the gateway's registry.
import { Counter, type Registry } from 'prom-client';

export interface ImpAcceptorMetrics {
  bagsReceived: Counter;
  messagesReceived: Counter;
  /** Replies sent, by operation (ACKNOWLEDGE's request DELIVER, PROBE, CANCEL, ...) and answer. */
  replies: Counter<'operation' | 'answer' | 'error_class'>;
  /** Connections this side closed, by why (limit, framing, truncated, bag-timeout, idle). */
  connectionsClosed: Counter<'reason'>;
  /** End-to-end ACKNOWLEDGEs recorded for messages of ours, by answer. */
  endToEnd: Counter<'answer'>;
}

export function createImpAcceptorMetrics(registry: Registry): ImpAcceptorMetrics {
  return {
    bagsReceived: new Counter({ name: 'mailbag_imp_bags_received_total', help: 'IMP message-bags received by the acceptor', registers: [registry] }),
    messagesReceived: new Counter({ name: 'mailbag_imp_messages_received_total', help: 'IMP messages received by the acceptor (every message of every bag)', registers: [registry] }),
    replies: new Counter({
      name: 'mailbag_imp_replies_total',
      help: 'Replies the acceptor sent (ACKNOWLEDGE, RESPONSE, CANCELED, ...) by the request operation, answer and error class',
      labelNames: ['operation', 'answer', 'error_class'],
      registers: [registry],
    }),
    endToEnd: new Counter({
      name: 'mailbag_imp_end_to_end_total',
      help: "Destinations' ACKNOWLEDGEs recorded for messages this MPM originated (RFC 753 Example 2 view 4), by answer",
      labelNames: ['answer'],
      registers: [registry],
    }),
    connectionsClosed: new Counter({
      name: 'mailbag_imp_connections_closed_total',
      help: 'IMP connections the acceptor closed, by reason',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}
