#!/usr/bin/env node
// Launcher: registers the TypeScript loader, then runs the CLI entry point.
// We pin AWS SDK releases that support Node 20 (package-lock.json); its Node 22 notice is noise here.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { register } = await import('tsx/esm/api');
register();
await import('../src/cli/main.ts');
