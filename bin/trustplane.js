#!/usr/bin/env node
// Launcher: registers the TypeScript loader, then runs the CLI entry point.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/main.ts');
