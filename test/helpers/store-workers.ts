// Runs several store-writer.ts threads against one store file at the same moment.
import { Worker } from 'node:worker_threads';
import { workerSource } from '../../src/gateway/worker-source.js';
import type { StoreWriterData, StoreWriterReport } from './store-writer.js';

function spawnWriter(data: StoreWriterData): Worker {
  const { source, eval: evaluate } = workerSource(import.meta.url, 'store-writer');
  return new Worker(source, { eval: evaluate, workerData: data });
}

export async function runWritersTogether(list: StoreWriterData[]): Promise<StoreWriterReport[]> {
  const workers = list.map(spawnWriter);
  try {
    await Promise.all(
      workers.map(
        (w) =>
          new Promise<void>((resolve, reject) => {
            w.once('message', () => resolve());
            w.once('error', reject);
          }),
      ),
    );
    const reports = workers.map(
      (w) =>
        new Promise<StoreWriterReport>((resolve, reject) => {
          w.once('message', (r: StoreWriterReport) => resolve(r));
          w.once('error', reject);
        }),
    );
    for (const w of workers) w.postMessage('go');
    return await Promise.all(reports);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
