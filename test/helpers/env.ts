/**
 * A command line that runs `command` as it would outside a test. The test runner hooks
 * child_process and adds its loader to NODE_OPTIONS of every child, which breaks `tsc`
 * under `npm run build` and cannot be written by another user; `env -u` drops it again
 * after the hook has run (env execs the command, so the pid stays the command's).
 */
export function outsideTest(command: string, args: string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', command, ...args]];
}
