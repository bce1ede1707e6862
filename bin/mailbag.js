#!/usr/bin/env node
// Installed entry point: runs the compiled CLI (built by `npm ci` / `npm run build`).
import { main } from '../dist/cli/main.js';

await main();
