// How a worker thread's entry module is loaded: the compiled `.js` beside the caller, or,
// when running from source (tests, benchmarks), the `.ts` through tsx, whose loader worker
// threads do not inherit.

/** `name` without extension, resolved next to `callerUrl` (the caller's `import.meta.url`). */
export function workerSource(callerUrl: string, name: string): { source: string | URL; eval: boolean } {
  if (!callerUrl.endsWith('.ts')) return { source: new URL(`./${name}.js`, callerUrl), eval: false };
  const entry = new URL(`./${name}.ts`, callerUrl).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return {
    source: `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`,
    eval: true,
  };
}
