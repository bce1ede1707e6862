import { spawnSync } from 'node:child_process';

/**
 * A command line that runs `command` as it would outside a test. The test runner hooks
 * child_process and adds its loader to NODE_OPTIONS of every child, which breaks `tsc`
 * under `npm run build` and cannot be written by another user; `env -u` drops it again
 * after the hook has run (env execs the command, so the pid stays the command's).
 */
export function outsideTest(command: string, args: string[]): [string, string[]] {
  return ['env', ['-u', 'NODE_OPTIONS', command, ...args]];
}

/** The unprivileged user the tests run as when they run as root (chmod does not stop root). */
export const UNPRIVILEGED_UID = 65534;

/**
 * Why a test cannot run `file` as the unprivileged user, or false when it can: a checkout
 * under a directory that user cannot enter (root's home, mode 700, is where CI clones as
 * root) makes every such child fail before it starts, which says nothing about mailbag.
 */
export function unprivilegedCannotRead(file: string): string | false {
  if (process.getuid?.() !== 0) return false;
  const probe = spawnSync(process.execPath, ['-e', 'require("fs").accessSync(process.argv[1], require("fs").constants.R_OK)', file], {
    uid: UNPRIVILEGED_UID,
    gid: UNPRIVILEGED_UID,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    stdio: 'ignore',
  });
  return probe.status === 0 ? false : `uid ${UNPRIVILEGED_UID} cannot read ${file} (a parent directory is closed to it): move the checkout somewhere it can read to run this test`;
}
