// A bench/lookup generator thread: builds the bulk's rows for the ranges of messages the main
// thread asks for, while the main thread inserts the previous ones.
import { parentPort } from 'node:worker_threads';
import { bulkRows } from './generate.js';

parentPort!.on('message', (range: { from: number; to: number }) => {
  parentPort!.postMessage(bulkRows(range.from, range.to));
});
