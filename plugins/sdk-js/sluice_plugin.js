// The sluice plugin SDK for JavaScript (componentize-qjs or componentize-js):
// write two functions, never touch the bindings.
//
//   import * as sluice from "./sluice_plugin.js";
//
//   export const transform = sluice.transform({
//     name: "my-plugin",
//     version: "0.1.0",
//     init(config) { return state; },     // the stage's `config` table; throw to refuse it
//     process(state, event) { return event; },  // one event (an object), in order
//   });
//
// `process` returns the event to keep it, an array of events for zero or
// more, or `sluice.drop(rule)` / `sluice.error(reason)`. A thrown error becomes
// an error outcome: the host quarantines that event with the message, and the
// plugin goes on with the next one.
//
// A parser exports `parser = sluice.parser({name, version, init, parse(state, record)})`,
// where `record` is a Uint8Array of raw bytes (`sluice.text(record)` decodes UTF-8).
//
// Events are objects keyed by the sluice schema's flat column names (`time`,
// `actor_user_name`, ...); other keys end up in the `unmapped` column.

import { log as hostLog } from "sluice:plugin/host@0.1.0";

const DROP = Symbol("drop");
const ERROR = Symbol("error");

/** No event, on purpose; `rule` names why. */
export function drop(rule) {
  return { [DROP]: String(rule) };
}

/** Not processed: the host quarantines the input with this reason. */
export function error(reason) {
  return { [ERROR]: String(reason) };
}

/** The value at a dotted path ("a.b.c") of the event's own members, or undefined. */
export function getPath(event, path) {
  let value = event;
  for (const name of path.split(".")) {
    if (value === null || typeof value !== "object" || !Object.hasOwn(value, name)) return undefined;
    value = value[name];
  }
  return value;
}

const RESERVED = new Set(["__proto__", "constructor", "prototype"]);

/** Sets the value at a dotted path, making the objects on the way. */
export function setPath(event, path, value) {
  const names = path.split(".");
  if (names.some((n) => RESERVED.has(n))) throw new Error(`setPath: \`${path}\` names an object's internals`);
  let target = event;
  for (const name of names.slice(0, -1)) {
    if (!Object.hasOwn(target, name) || target[name] === null || typeof target[name] !== "object") {
      target[name] = {};
    }
    target = target[name];
  }
  target[names[names.length - 1]] = value;
}

/** A line in the host's log: "trace", "debug", "info", "warn" or "error". */
export function log(level, message) {
  hostLog(level, String(message));
}

/** UTF-8 text of a record, decoded as TextDecoder with `ignoreBOM: true`
 * would (QuickJS has none): each invalid sequence becomes one U+FFFD, and a
 * byte-order mark is kept, as Rust's and Python's decoders keep it. */
export function text(record) {
  let out = "";
  let i = 0;
  while (i < record.length) {
    const b = record[i];
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i += 1;
      continue;
    }
    // the sequence's length, and the range its second byte must be in
    let need = 0;
    let lo = 0x80;
    let hi = 0xbf;
    let cp = 0;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      cp = b & 0x1f;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      cp = b & 0x0f;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      cp = b & 0x07;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    }
    let k = 1;
    while (k <= need) {
      const c = record[i + k];
      if (c === undefined || c < lo || c > hi) break;
      cp = (cp << 6) | (c & 0x3f);
      lo = 0x80;
      hi = 0xbf;
      k += 1;
    }
    if (need === 0 || k <= need) {
      out += "\ufffd";
      i += need === 0 ? 1 : k;
      continue;
    }
    out += String.fromCodePoint(cp);
    i += k;
  }
  return out;
}

/** A plain object (not an array, a Date, a Map, an outcome marker...). */
function isEvent(value) {
  if (value === null || typeof value !== "object" || DROP in value || ERROR in value) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array that holds something other than events";
  if (typeof value === "object") return `a ${value.constructor?.name ?? "non-plain"} object`;
  return typeof value;
}

function wire(result) {
  if (result !== null && typeof result === "object") {
    if (DROP in result) return { tag: "drop", val: result[DROP] };
    if (ERROR in result) return { tag: "error", val: result[ERROR] };
    if (Array.isArray(result) && result.every(isEvent)) {
      return { tag: "many", val: result.map((e) => JSON.stringify(e)) };
    }
    if (isEvent(result)) return { tag: "keep", val: JSON.stringify(result) };
  }
  return { tag: "error", val: `the plugin returned ${describe(result)}, not an event or an outcome` };
}

/** The first integer in `value` that JavaScript cannot hold exactly, or undefined. */
function unsafeInteger(value) {
  if (typeof value === "number") return Number.isInteger(value) && !Number.isSafeInteger(value) ? value : undefined;
  if (value !== null && typeof value === "object") {
    for (const v of Object.values(value)) {
      const found = unsafeInteger(v);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function call(fn, state, input) {
  try {
    return wire(fn(state, input));
  } catch (e) {
    return { tag: "error", val: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
}

function start(init, config) {
  let settings;
  try {
    settings = config.trim() ? JSON.parse(config) : {};
  } catch (e) {
    throw `plugin config is not valid JSON: ${e.message}`;
  }
  try {
    return init ? init(settings) : settings;
  } catch (e) {
    throw e instanceof Error ? e.message : String(e);
  }
}

/** The export object: `info`, `init`, and the batch call `method`, which
 * gives each input to `each(state, input)`. */
function exportObject({ name, version, init }, method, each) {
  let state;
  let ready = false;
  return {
    info: () => ({ name, version }),
    init(config) {
      state = start(init, config);
      ready = true;
    },
    [method](inputs) {
      if (!ready) return inputs.map(() => ({ tag: "error", val: "plugin used before init" }));
      return inputs.map((input) => each(state, input));
    },
  };
}

/** The export object for a transform plugin: `export const transform = ...`. */
export function transform(spec) {
  return exportObject(spec, "process", (state, text) => {
    let event;
    try {
      event = JSON.parse(text);
    } catch {
      event = undefined;
    }
    if (!isEvent(event)) return { tag: "error", val: "event is not a JSON object" };
    // JavaScript numbers are doubles: refuse an event whose integers it would
    // silently change, rather than alter evidence
    const big = unsafeInteger(event);
    if (big !== undefined) {
      return { tag: "error", val: `event holds an integer beyond 2^53 (${big}), which JavaScript cannot keep exactly` };
    }
    return call(spec.process, state, event);
  });
}

/** The export object for a parser plugin: `export const parser = ...`. */
export function parser(spec) {
  return exportObject(spec, "parse", (state, record) => call(spec.parse, state, record));
}
