// Checks the JavaScript SDK's UTF-8 decoder (QuickJS has no TextDecoder)
// against Node's TextDecoder (keeping a BOM, as the SDK does): fixed edge
// cases, then random byte strings.
// Usage: node js_sdk_text.mjs PATH/TO/sluice_plugin.js  -> prints "mismatches N"
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// the SDK imports the host's log; outside a component, stub it
const source = readFileSync(process.argv[2], "utf8").replace(
  /^import \{ log as hostLog \} from "sluice:plugin\/host@0\.1\.0";$/m,
  "const hostLog = () => {};",
);
const file = join(mkdtempSync(join(tmpdir(), "sdk-")), "sluice_plugin.mjs");
writeFileSync(file, source);
const { text } = await import(file);

const cases = [
  [0x61, 0x62], [0xc3, 0xa9], [0xe2, 0x98, 0x83], [0xf0, 0x9f, 0x98, 0x80], [0xff, 0x61], [0xc3],
  [0xe2, 0x98], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80], [0xe0, 0x80, 0x80],
  [0xef, 0xbb, 0xbf, 0x61],
];
let seed = 42;
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
for (let n = 0; n < 20000; n++) {
  cases.push(Array.from({ length: Math.floor(random() * 8) }, () => Math.floor(random() * 256)));
}
let mismatches = 0;
for (const bytes of cases) {
  const record = new Uint8Array(bytes);
  if (text(record) !== new TextDecoder("utf-8", { ignoreBOM: true }).decode(record)) {
    mismatches += 1;
    if (mismatches < 5) console.error("differs on", bytes);
  }
}
console.log(`mismatches ${mismatches} of ${cases.length}`);
