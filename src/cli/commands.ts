import type { Command } from './command.js';
import { configCommand } from './config-command.js';
import { impCommand } from './imp-command.js';
import { langCommand } from './lang-command.js';
import { podCommand } from './pod-command.js';
import { queueCommand } from './queue-command.js';
import { reportCommand } from './report-command.js';
import { startCommand } from './start-command.js';
import { traceCommand } from './trace-command.js';
import { usersCommand } from './users-command.js';

/** Every top-level command; each lives in its own file. */
export const commands: Command[] = [startCommand, configCommand, queueCommand, impCommand, langCommand, usersCommand, podCommand, traceCommand, reportCommand];
