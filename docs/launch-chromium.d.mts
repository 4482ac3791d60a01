// Types of launch-chromium.mjs, so TypeScript tests share the one launcher (and its flags) with the docs scripts.
import type { Browser } from 'playwright-core';

export declare const CHROMIUM: string;
export declare function launchChromium(extraArgs?: string[]): Promise<Browser>;
