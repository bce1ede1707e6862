// Runs several store-writer.ts threads against one store file at the same moment.
import { Worker } from 'node:worker_threads';
import type { StoreWriterData, StoreWriterReport } from './store-writer.js';

/** Worker threads do not inherit tsx's loader: register it inside the thread first. */
function spawnWriter(data: StoreWriterData): Worker {
  const entry = new URL('./store-writer.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const source = `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(source, { eval: true, workerData: data });
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
