// Entry point of the PoD ingest thread (see pod-ingest-thread.ts).
import { parentPort } from 'node:worker_threads';
import { ingestToBatchItem } from '../pod/ingest.js';
import type { FromIngestThread, ToIngestThread } from './pod-ingest-thread.js';

const port = parentPort!;
port.on('message', (m: ToIngestThread) => {
  const bytes = Buffer.from(m.bytes);
  const items: FromIngestThread = [];
  let start = 0;
  for (const end of m.ends) {
    items.push(ingestToBatchItem(bytes.subarray(start, end), m.opts.source, m.opts));
    start = end;
  }
  port.postMessage(items);
});
